import numpy as np


def gaussian_nll(x: "D", mu: "D", S: "D x D"):
    # check: positive-definite S
    r = x - mu
    sign, logdet = np.linalg.slogdet(S)
    maha = r @ np.linalg.solve(S, r)
    return 0.5 * logdet + 0.5 * maha
