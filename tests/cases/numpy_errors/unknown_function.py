import numpy as np


def odd(x: "N x D"):
    out = np.fft.fft(x)
    return out, None
