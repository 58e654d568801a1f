import math
import numpy as np


def scaled_dot_attention(q: "T x D", k: "T x D", v: "T x D"):
    d = q.shape[1]
    s = q @ k.T / math.sqrt(d)
    s = s - s.max(axis=-1, keepdims=True)
    a = np.exp(s)
    a /= a.sum(axis=-1, keepdims=True)
    return a @ v
