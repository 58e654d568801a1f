import numpy as np


def two_layer_scores(X: "N x D", W1: "D x H", b1: "H", W2, b2: "C"):
    # W2 has no annotation: only H x C lets `h.dot(W2) + b2` be valid numpy.
    h = np.maximum(0, X.dot(W1) + b1)
    scores = h.dot(W2) + b2
    return scores, (X, h)
