import numpy as np


def sigmoid(x):
    """
    A numerically stable version of the logistic sigmoid function (CS231n's rnn_layers.py).
    """
    pos_mask = x >= 0
    neg_mask = x < 0
    z = np.zeros_like(x)
    z[pos_mask] = np.exp(-x[pos_mask])
    z[neg_mask] = np.exp(x[neg_mask])
    top = np.ones_like(x)
    top[neg_mask] = z[neg_mask]
    return top / (1 + z)


def gated_forward(x: "N x D", Wg: "D x H", Wh: "D x H"):
    out = sigmoid(x.dot(Wg)) * np.tanh(x.dot(Wh))
    cache = (x, Wg, Wh)
    return out, cache
