import numpy as np


def gru_like(x: "N x H", h: "N x H", W: "2*H x H", b: "H"):
    xh = np.concatenate([x, h], axis=1)
    out = np.tanh(xh @ W + b)
    return out, (xh, out)
