import numpy as np


def affine_forward(x, w: "D x M", b: "M"):
    out = x.dot(w) + b
    return out, (x, w, b)
