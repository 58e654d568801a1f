import numpy as np


def act(x: "N x D"):
    f = lambda v: v * 2
    return f(x), None
