import numpy as np


def logistic_loss(X: "N x D", w: "D", b: "scalar", t: "N"):
    z = X @ w + b
    p = 1 / (1 + np.exp(-z))
    loss = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))
    return loss
