import numpy as np


def leaky_relu_forward(x: "N x D", alpha=0.1):
    out = x.copy()
    out[x < 0] *= alpha
    cache = x
    return out, cache
