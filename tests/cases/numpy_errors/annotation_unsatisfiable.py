import numpy as np


def both_sides(x: "N x D", w):
    # x.dot(w) needs w's rows to be D, x.T.dot(w) needs them to be N.
    out = x.dot(w) + x.T.dot(w)
    return out, None
