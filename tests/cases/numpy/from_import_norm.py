import numpy as np
from numpy.linalg import norm


def f(a: "D", b: "D"):
    return np.dot(a, b) / (norm(a) * norm(b))
