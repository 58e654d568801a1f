import numpy as np


def word_embedding_forward(x: "N labels of V", W: "V x D"):
    out = W[x]
    cache = (x, W)
    return out, cache
