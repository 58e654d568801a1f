import numpy as np

def focal_loss(z: "N", t: "N", gamma=2.0):
    p = 1.0 / (1.0 + np.exp(-z))
    pt = t * p + (1 - t) * (1 - p)
    loss = -np.mean((1 - pt) ** gamma * np.log(pt))
    return loss
