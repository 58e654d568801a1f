import numpy as np

def layernorm(x, g, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return g * (x - mu) / np.sqrt(var + eps) + b

def softmax(s):
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)

def block_forward(x: "T x D", Wq: "D x D", Wk: "D x D", Wv: "D x D", g: "D", b: "D"):
    q, k, v = x @ Wq, x @ Wk, x @ Wv
    att = softmax(q @ k.T / np.sqrt(x.shape[1]))
    h = x + att @ v
    out = layernorm(h, g, b)
    return out, (q, k, v, att, h)
