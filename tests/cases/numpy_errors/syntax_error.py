import numpy as np


def broken(x: "N x D"):
    out = (x + 1
    return out, None
