import numpy as np


def positive_sum(x: "N x D"):
    return np.sum(x[x > 0])
