import numpy as np


def huber_loss(pred: "N", target: "N", delta=1.0):
    r = pred - target
    quadratic = np.clip(r, -delta, delta)
    linear = np.abs(r) - np.abs(quadratic)
    loss = np.mean(0.5 * quadratic ** 2 + delta * linear)
    return loss
