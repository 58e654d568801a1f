import numpy as np


def total_mean(x: "N x D", w: "D"):
    y = x * w
    return np.mean(y, axis=(0, 1)) + np.sum(y, (0, 1))
