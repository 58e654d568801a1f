import numpy as np


def max_over_features(x: "N x D", w: "D"):
    scores = x * w
    best = scores.max(axis=1)
    worst = np.min(scores, axis=0)
    return np.sum(best ** 2) + np.sum(worst)
