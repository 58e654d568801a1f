import numpy as np


def softmax_loss_vectorized(W: "D x C", X: "N x D", y: "N labels of C", reg: "scalar"):
    """Softmax loss, as CS231n's assignment 1 writes it (forward part)."""
    loss = 0.0
    dW = np.zeros_like(W)
    num_train = X.shape[0]
    scores = X.dot(W)
    scores -= np.max(scores, axis=1, keepdims=True)
    exp_scores = np.exp(scores)
    probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(num_train), y])) / num_train
    loss += 0.5 * reg * np.sum(W * W)
    return loss
