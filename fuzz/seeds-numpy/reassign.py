import numpy as np


def normalize_rows(x: "N x D", w: "D"):
    x = x * w
    x = x - x.mean(axis=1, keepdims=True)
    x /= np.sqrt((x ** 2).sum(axis=1, keepdims=True) + 1.0)
    loss = 0.0
    loss += np.sum(x * x)
    loss = loss + np.sum(np.tanh(x))
    return loss
