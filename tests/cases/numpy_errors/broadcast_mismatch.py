import numpy as np


def bad_bias(x: "N x D", b: "N"):
    out = x + b
    return out, None
