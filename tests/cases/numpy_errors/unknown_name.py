import numpy as np


def typo(x: "N x D", gamma: "D"):
    out = gama * x
    return out, None
