import numpy as np

def net(X: "N x D", W1: "D x H", W2: "H x 1", b2: "1", y: "N"):
    h = np.tanh(X @ W1)
    scores = h @ W2 + b2
    return np.mean((scores[:, 0] - y) ** 2)
