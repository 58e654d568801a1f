import numpy as np

def reconstruction_error(X: "N x D", W: "D x K"):
    Xc = X - X.mean(axis=0)
    recon = Xc @ W @ W.T
    return np.linalg.norm(Xc - recon) ** 2 / X.shape[0]
