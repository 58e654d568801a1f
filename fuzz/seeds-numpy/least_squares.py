import numpy as np


def least_squares_loss(X: "N x D", w: "D", y: "N"):
    N = X.shape[0]
    residual = X.dot(w) - y
    loss = np.sum(residual ** 2) / (2 * N)
    return loss
