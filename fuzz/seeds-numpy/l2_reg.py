import numpy as np


def l2_regularization(W: "D x D", reg: "scalar"):
    loss = 0.5 * reg * np.sum(W * W)
    return loss
