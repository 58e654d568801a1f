import numpy as np


def affine_forward(x: "N x D", w: "D x M", b):
    # numpy broadcasts b onto every row whether it is a scalar, (M,) or (N, M).
    out = x.dot(w) + b
    return out, (x, w, b)
