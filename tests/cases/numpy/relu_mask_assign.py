import numpy as np


def relu_forward(x: "N x D"):
    out = x.copy()
    out[out < 0] = 0
    cache = x
    return out, cache
