import numpy as np


def dropout_forward(x: "N x D", mask: "N x D", p=0.5):
    out = x * mask / p
    cache = mask
    return out, cache
