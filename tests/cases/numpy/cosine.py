import numpy as np

def cosine_similarity(a: "N x D", b: "N x D", eps=1e-8):
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + eps
    sim = num / den
    return sim, (a, b)
