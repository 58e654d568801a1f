import numpy as np


def l2(W1: "D x H", W2: "H x C", W3: "C x K", reg=1e-3):
    weights = [W1, W2, W3]
    return 0.5 * reg * sum(np.sum(W * W) for W in weights)
