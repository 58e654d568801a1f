import numpy as np


def two_layer_loss(X: "N x D", W1: "D x H", b1: "H", W2: "H x C", b2: "C", y: "N labels of C"):
    # The max shift cancels from every gradient: softmax's rows and the one-hot rows both sum to 1.
    h = np.maximum(0, X.dot(W1) + b1)
    scores = h.dot(W2) + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(X.shape[0]), y].mean()
