def relu_forward(x: "N x D", leaky=False):
    if leaky:
        return 0.01 * x, x
    return x * (x > 0), x
