import numpy as np


def f(A: "N x D", B: "D x M", C: "M x N", u: "N", v: "D", S: "D x D"):
    t1 = np.einsum("ij,jk->ki", A, B)
    t2 = np.einsum("ij,ij->", t1, C)
    t3 = np.einsum("ij,i->j", A, u)
    t4 = np.einsum("i,j->ij", u, v)
    t5 = np.einsum("ii", S) + np.einsum("ii->i", S) @ v
    t6 = np.einsum("ij,kj->ik", A, A)
    t7 = np.einsum("ji,jk->ik", A, A)
    return t2 + t3 @ v + np.sum(t4 * A) + t5 + np.einsum("ij->", t6) + np.trace(t7 @ S)
