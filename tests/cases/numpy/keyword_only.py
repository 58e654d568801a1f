import numpy as np


def layer(x: "N x D", w: "D", *, eps=1e-6):
    return np.sum(np.sqrt(x ** 2 + eps) * w)
