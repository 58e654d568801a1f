import numpy as np


def outer_scale(u: "N", v: "M", A: "N x M"):
    U = np.expand_dims(u, 1)
    V = np.expand_dims(v, axis=0)
    return np.sum(A * U * V)
