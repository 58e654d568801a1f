import numpy as np


def rnn_forward(x: "N x D", h0: "N x H", Wx: "D x H"):
    h = h0
    for t in range(3):
        h = np.tanh(x.dot(Wx) + h)
    return h, None
