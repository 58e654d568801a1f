//! Least squares: the gradient and the Hessian of ‖Xw − y‖², with ridge regularisation.
//! Run with `cargo run --example least_squares`.

use matdiff::fullform::hessian;
use matdiff::{check_script, grad_checked, Options};

fn main() -> Result<(), matdiff::Error> {
    let checked = check_script("X : n x d; w : d; y : n; lambda : scalar; norm(X*w - y)^2 + lambda * w'*w")?;
    let gradient = grad_checked(&checked, "w", &Options::default())?;
    println!("{gradient}\n");
    let h = hessian(&checked, "w", &Options::default())?;
    println!("{h}");
    assert!(gradient.check.passed() && h.check.passed());
    Ok(())
}
