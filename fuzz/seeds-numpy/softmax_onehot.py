import numpy as np


def softmax_loss(x: "N x C", y: "N labels of C"):
    N = x.shape[0]
    exp_scores = np.exp(x)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    return loss
