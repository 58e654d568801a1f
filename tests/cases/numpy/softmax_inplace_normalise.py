import numpy as np


def softmax_loss_vectorized(W: "D x C", X: "N x D", y: "N labels of C", reg: float):
    num_train = X.shape[0]
    scores = X.dot(W)
    scores -= np.max(scores, axis=1, keepdims=True)
    probs = np.exp(scores)
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.log(probs[range(num_train), y]).sum() / num_train
    loss += reg * np.sum(W * W)
    return loss
