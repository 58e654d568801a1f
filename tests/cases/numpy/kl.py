import numpy as np

def kl_divergence(logits_p: "N x C", logits_q: "N x C"):
    p = np.exp(logits_p - np.max(logits_p, axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    logq = logits_q - np.log(np.sum(np.exp(logits_q), axis=1, keepdims=True))
    logp = np.log(p)
    return np.sum(p * (logp - logq)) / logits_p.shape[0]
