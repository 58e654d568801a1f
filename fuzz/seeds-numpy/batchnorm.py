import numpy as np


def batchnorm_forward(x: "N x D", gamma: "D", beta: "D", eps=1e-5):
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc ** 2).mean(axis=0)
    xhat = xc / np.sqrt(var + eps)
    out = gamma * xhat + beta
    cache = (xhat, gamma, var, eps)
    return out, cache
