import numpy as np


def affine_forward(x: "N x D", w: "D x M", b: "M"):
    """Computes the forward pass for an affine (fully connected) layer."""
    out = x.reshape(x.shape[0], -1).dot(w) + b
    cache = (x, w, b)
    return out, cache
