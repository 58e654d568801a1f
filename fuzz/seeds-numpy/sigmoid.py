import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_forward(x: "N x D"):
    out = sigmoid(x)
    cache = out
    return out, cache
