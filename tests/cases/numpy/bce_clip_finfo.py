import numpy as np


def bce(w: "D", X: "N x D", y: "N"):
    eps = np.finfo(float).eps
    p = 1.0 / (1.0 + np.exp(-X.dot(w)))
    p = np.clip(p, eps, 1 - eps)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
