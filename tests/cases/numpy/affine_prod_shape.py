import numpy as np


def affine_forward(x: "N x D", w: "D x M", b: "M"):
    N = x.shape[0]
    D = np.prod(x.shape[1:])
    x_row = x.reshape(N, D)
    out = np.dot(x_row, w) + b
    cache = (x, w, b)
    return out, cache
