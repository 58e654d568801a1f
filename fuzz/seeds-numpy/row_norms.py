import numpy as np


def normalize_embeddings(E: "N x D", w: "D"):
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    unit = E / norms
    scores = np.clip(unit @ w, 0.0, None)
    return np.sum(scores ** 2)
