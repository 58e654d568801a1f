import numpy as np


def layernorm_forward(x: "N x D", gamma: "D", beta: "D", eps=1e-5):
    mean = np.mean(x, axis=1, keepdims=True)
    var = np.var(x, axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std
    out = gamma * x_hat + beta
    return out, (x_hat, std, gamma)
