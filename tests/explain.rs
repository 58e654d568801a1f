//! `explain`: the three derivations of the broadcasting gradient agree, and every step
//! of the compact derivation passes its own numeric check.

use matdiff::explain::{explain, Axis};
use matdiff::{check_script, Options};

fn redacted(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("max relative error") {
            Some(i) => format!("{}max relative error <= 1e-6)", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_seed_three_ways() {
    let x = explain(
        &check_script("X : B x N; W : N x M; b : M; h = X*W + b").unwrap(),
        "b",
        &Options::default(),
    )
    .unwrap();
    assert!(x.all_checked(), "{x}");
    let intuitive = x.intuitive.as_ref().expect("b is broadcast");
    assert_eq!(intuitive.axis, Axis::Rows);
    assert_eq!(intuitive.upstream, "G");
    assert_eq!(x.steps.len(), 4);
    assert!(x.steps.iter().all(|s| s.check.passed()));
    let full = x.full.as_ref().expect("h is not scalar");
    assert_eq!(full.matrix_text(), "1_B ⊗ I_M");
    assert_eq!(x.result.formula_text(), "Gᵀ·1_B");
    insta::assert_snapshot!("explain_seed", redacted(&x.to_string()));
    insta::assert_snapshot!("explain_seed_latex", x.latex());
}

#[test]
fn a_scalar_loss_step_by_step() {
    let x = explain(
        &check_script("X : B x N; w : N; y : B; sum(log(1 + exp(-y .* (X*w))))").unwrap(),
        "w",
        &Options::default(),
    )
    .unwrap();
    assert!(x.all_checked(), "{x}");
    assert!(x.intuitive.is_none() && x.full.is_none());
    insta::assert_snapshot!("explain_logistic", redacted(&x.to_string()));
}

#[test]
fn a_column_broadcast_sums_over_columns() {
    let x = explain(
        &check_script("X : B x N; W : N x M; c : B; h = tanh(X*W + c)").unwrap(),
        "c",
        &Options::default(),
    )
    .unwrap();
    assert!(x.all_checked(), "{x}");
    assert_eq!(x.intuitive.as_ref().map(|i| i.axis), Some(Axis::Columns));
}

/// The seed's story the other way round: a sum over an axis gives each entry the upstream of
/// its sum, so the gradient is a broadcast, checked entry by entry.
#[test]
fn a_reduction_gives_each_entry_the_upstream_of_its_sum() {
    for (script, axis, count) in [
        ("X : N x D; s = X'*ones(N)", Axis::Rows, "N"),
        ("X : N x D; s = X*ones(D)", Axis::Columns, "D"),
        ("X : N x D; s = sum(X)", Axis::Entries, "all"),
    ] {
        let x = explain(&check_script(script).unwrap(), "X", &Options::default()).unwrap();
        assert!(x.all_checked(), "{x}");
        let intuitive = x.intuitive.as_ref().expect("X is reduced");
        assert!(intuitive.reduced.is_some() && intuitive.agrees, "{x}");
        assert_eq!((intuitive.axis, intuitive.count.as_str()), (axis, count), "{script}");
    }
    let column_sums = explain(
        &check_script("X : N x D; s = X'*ones(N)").unwrap(),
        "X",
        &Options::default(),
    )
    .unwrap();
    insta::assert_snapshot!(redacted(&column_sums.to_string()));
    // Used twice, X is not just reduced: no intuitive reading is claimed.
    let twice = explain(
        &check_script("X : N x D; f = sum(X) + sum(X.^2)").unwrap(),
        "X",
        &Options::default(),
    )
    .unwrap();
    assert!(twice.intuitive.is_none(), "{twice}");
}
