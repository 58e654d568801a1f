import numpy as np


def norms(X: "N x D", w: "D"):
    a = np.linalg.norm(X, ord=2, axis=1)
    b = np.linalg.norm(w, ord=1)
    c = np.linalg.norm(X, 'fro')
    return a.sum() + b + c ** 2
