def f(x: "N x D"):
    y = x * 2
      z = y + 1
    return z
