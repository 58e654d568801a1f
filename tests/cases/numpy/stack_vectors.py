import numpy as np


def f(u: "D", v: "D", W: "D x K"):
    X = np.vstack([u, v])
    S = np.stack([u, v], axis=1)
    return np.sum(np.tanh(X @ W)) + np.sum(S ** 2)
