import numpy as np


def batchnorm_forward(x: "N x D", gamma: "D", beta: "D", bn_param=None):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    out = gamma * (x - mu) / np.sqrt(var + eps) + beta
    return out, None
