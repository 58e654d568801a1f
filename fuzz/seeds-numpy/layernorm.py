import numpy as np


def layernorm_forward(x: "N x D", gamma: "D", beta: "D", eps=1e-5):
    mu = np.mean(x, axis=1, keepdims=True)
    xc = x - mu
    var = np.mean(xc ** 2, axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = xc / std
    out = gamma * xhat + beta
    cache = (xhat, gamma, std)
    return out, cache
