import numpy as np


def ufuncs(x: "N x D", w: "D x M", b: "M"):
    z = np.add(np.dot(x, w), b)
    z = np.multiply(z, z)
    z = np.subtract(z, 1.0)
    z = np.divide(z, 2.0)
    z = np.power(z, 2)
    return np.sum(np.negative(np.reciprocal(1 + np.square(z))))
