import numpy as np

def embedding_mean(t: "N labels of V", E: "V x D", w: "D"):
    return np.dot(E[t].mean(axis=0), w)
