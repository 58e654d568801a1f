import numpy as np

def triplet_loss(a: "N x D", p: "N x D", n: "N x D", margin=1.0):
    d_pos = np.sum((a - p) ** 2, axis=1)
    d_neg = np.sum((a - n) ** 2, axis=1)
    losses = np.maximum(d_pos - d_neg + margin, 0.0)
    return losses.mean()
