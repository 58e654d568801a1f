import numpy as np


def lstm(x: "N x D", h: "N x H", c: "N x H", W: "D x 4*H", U: "H x 4*H"):
    z = x @ W + h @ U
    i, f, o, g = np.split(z, 4, axis=1)
    c2 = 1 / (1 + np.exp(-f)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
    h2 = 1 / (1 + np.exp(-o)) * np.tanh(c2)
    return h2, c2
