import numpy as np


def scaled_loss(x: "N x D"):
    N, D = x.shape
    scale = 1.0 / max(N, 1)
    return scale * np.sum(x ** 2)
