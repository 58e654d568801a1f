import numpy as np


def leaky_relu_forward(x: "N x D", alpha=0.01):
    out = np.where(x > 0, x, alpha * x)
    cache = x
    return out, cache
