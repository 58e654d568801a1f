//! The negative log-likelihood of a Gaussian N(μ, Σ) at one sample x, with respect to the
//! mean and to a symmetric covariance (the gradient on symmetric matrices, Srinivasan &
//! Panda 2020). Run with `cargo run --example gaussian_likelihood`.

use matdiff::{check_script, grad_checked, Options};

fn main() -> Result<(), matdiff::Error> {
    let script = "x : n; mu : n; S : n x n symmetric
                  nll = (logdet(S) + (x - mu)' * inv(S) * (x - mu)) / 2";
    let checked = check_script(script)?;
    for variable in ["mu", "S"] {
        let d = grad_checked(&checked, variable, &Options::default())?;
        println!("{d}\n");
        assert!(d.check.passed());
    }
    Ok(())
}
