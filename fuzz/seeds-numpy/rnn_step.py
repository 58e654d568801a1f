import numpy as np


def rnn_step_forward(x: "N x D", prev_h: "N x H", Wx: "D x H", Wh: "H x H", b: "H"):
    next_h = np.tanh(x.dot(Wx) + prev_h.dot(Wh) + b)
    cache = (x, prev_h, Wx, Wh, next_h)
    return next_h, cache
