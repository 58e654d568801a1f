import numpy as np


def logistic_loss(X: "N x D", w: "D", b: float, y: "N"):
    z = X.dot(w) + b
    p = 1 / (1 + np.exp(-z))
    eps = 1e-12
    loss = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    return loss
