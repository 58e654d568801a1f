import numpy as np


def hinge_loss(X: "N x D", w: "D", t: "N", reg: "scalar"):
    margins = 1 - t * X.dot(w)
    loss = np.mean(np.maximum(0, margins)) + 0.5 * reg * np.dot(w, w)
    return loss
