//! The full backward pass of a two-layer MLP with a squared loss: the gradient of every
//! weight and bias, each derived, simplified and checked.
//! Run with `cargo run --example mlp_backward`.

use matdiff::{check_script, grad_checked, Options};

fn main() -> Result<(), matdiff::Error> {
    let script = "
        X : B x D; Y : B x K
        W1 : D x H; b1 : H; W2 : H x K; b2 : K
        Z1 = X*W1 + b1          # b1 is broadcast over the batch
        A1 = tanh(Z1)
        P = A1*W2 + b2
        L = sum((P - Y) .* (P - Y)) / 2
    ";
    let checked = check_script(script)?;
    for parameter in ["W2", "b2", "W1", "b1"] {
        let d = grad_checked(&checked, parameter, &Options::default())?;
        println!("{d}\n");
        assert!(d.check.passed());
        println!("numpy: {}\n", d.numpy());
    }
    Ok(())
}
