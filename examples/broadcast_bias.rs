//! The seed: what is the gradient of numpy broadcasting in `h = X·W + b`?
//! Run with `cargo run --example broadcast_bias`.

use matdiff::{check_script, explain::explain, Options};

fn main() -> Result<(), matdiff::Error> {
    let script = "X : B x N; W : N x M; b : M; h = X*W + b";
    let checked = check_script(script)?;
    let explanation = explain(&checked, "b", &Options::default())?;
    println!("{explanation}");
    assert!(explanation.all_checked());
    Ok(())
}
