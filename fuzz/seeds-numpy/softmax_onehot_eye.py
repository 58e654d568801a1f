import numpy as np


def softmax_cross_entropy(scores: "N x C", y: "N labels of C"):
    N, C = scores.shape
    Y = np.eye(C)[y]
    shifted = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.sum(Y * np.log(probs)) / N
    return loss
