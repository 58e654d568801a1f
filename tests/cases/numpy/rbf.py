import numpy as np

def rbf_kernel_loss(X: "N x D", Z: "M x D", gamma: "scalar"):
    sq = np.sum(X ** 2, axis=1)[:, None] + np.sum(Z ** 2, axis=1)[None, :] - 2 * X @ Z.T
    K = np.exp(-gamma * sq)
    return np.sum(K)
