//! What is printed is input: every corpus case's derived formula, printed in text, parses
//! back in its own script (with the upstream `G` declared) as the same function, compared
//! numerically on random instances; so does the target as displayed.

mod common;

use common::{full_form_only, load_cases, options_for, read_back_script};
use matdiff::numeric::{eval, Instance};
use nalgebra::DMatrix;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random values for every variable, with each dimension a distinct size.
fn instance(checked: &matdiff::lower::Checked, rng: &mut ChaCha8Rng) -> Instance {
    let mut inst = Instance {
        scale: 1.0,
        ..Instance::default()
    };
    for (k, d) in checked.dims.iter().enumerate() {
        inst.sizes.insert(d.clone(), 2 + k % 4);
    }
    for (name, shape) in &checked.env.shapes {
        let size = |d: &matdiff::dim::Dim| d.evaluate(&|n| inst.sizes.get(n).copied().unwrap_or(1));
        let (r, c) = (size(&shape.rows), size(&shape.cols));
        let mut m = DMatrix::from_fn(r, c, |_, _| rng.random_range(0.3..1.2));
        if r == c {
            // Well conditioned, for the inverses and determinants some formulas hold.
            m += DMatrix::identity(r, c) * (r as f64 + 1.0);
        }
        if checked.env.symmetric.contains(name) {
            m = (&m + m.transpose()) * 0.5;
        }
        inst.values.insert(*name, m);
    }
    inst
}

fn agree(a: &DMatrix<f64>, b: &DMatrix<f64>) -> bool {
    a.shape() == b.shape() && (a - b).amax() <= 1e-8 * a.amax().max(1.0)
}

#[test]
fn every_printed_formula_and_target_reads_back_as_the_same_function() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut failures = Vec::new();
    let mut compared = 0;
    for (file, case) in load_cases() {
        let Ok(d) = matdiff::grad_with(&case.script, &case.wrt, &options_for(&case)) else {
            continue;
        };
        // Forms outside the input language (full-form algebra) are not printed by `grad`.
        if full_form_only(&d.formula) {
            continue;
        }
        for (what, text, expected) in [
            ("formula", d.expanded_text(), &d.formula),
            (
                "target",
                matdiff::render::render(&d.target, &matdiff::render::text::Text).text,
                &d.target,
            ),
        ] {
            let read_back = read_back_script(&case.script, &d, &text);
            let checked = match matdiff::check_script(&read_back) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!(
                        "{file}/{} {what}: `{text}` does not parse: {}",
                        case.id,
                        e.render("rt", &read_back, false)
                    ));
                    continue;
                }
            };
            let inst = instance(&checked, &mut rng);
            match (eval(expected, &inst), eval(&checked.target.expr, &inst)) {
                (Ok(a), Ok(b)) if agree(&a, &b) => compared += 1,
                (Ok(a), Ok(b)) => failures.push(format!(
                    "{file}/{} {what}: `{text}` reads back as another function ({a} vs {b})",
                    case.id
                )),
                // Outside the domain on this instance (a log of a negative entry, say): no verdict.
                _ => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the printed forms do not read back:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared > 300, "only {compared} forms compared");
}

#[test]
fn the_printed_notation_is_input() {
    let pairs = [
        ("X : B x M; b : M; X + 1_B·bᵀ", "X : B x M; b : M; X + ones(B)*b'"),
        ("X : n x n; I_n − X", "X : n x n; eye(n) - X"),
        ("X : n x n; tr(X⁻ᵀ)", "X : n x n; tr(inv(X)')"),
        ("x : n; ‖x‖ + sum(|x|)", "x : n; norm(x) + sum(abs(x))"),
        ("x : n; sum(σ(x) ⊙ step(x))", "x : n; sum(sigmoid(x) .* step(x))"),
        ("x : n; X : n x m; x'*X + sum(0_(n x m))", "x : n; X : n x m; x'*X"),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (printed, plain) in pairs {
        let (a, b) = (matdiff::check_script(printed), matdiff::check_script(plain));
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("{printed}: {e:?}")),
            b.expect("the plain form reads"),
        );
        let inst = instance(&a, &mut rng);
        let (va, vb) = (
            eval(&a.target.expr, &inst).expect("evaluates"),
            eval(&b.target.expr, &inst).expect("evaluates"),
        );
        assert!(agree(&va, &vb), "{printed}: {va} vs {vb}");
    }
}

#[test]
fn a_quotient_of_a_quotient_keeps_its_brackets() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for script in [
        "X : n x n; Y : n x n; Z : n x n; sum(X ./ (Y ./ Z))",
        "X : n x n; Y : n x n; Z : n x n; sum(X ./ (Y .* Z))",
        "X : n x n; Y : n x n; Z : n x n; sum((X ./ Y) ./ Z)",
    ] {
        let d = matdiff::grad(script, "X").expect("derives");
        assert!(d.check.passed(), "{d}");
        let shown = d.target_text();
        let decls = script.rsplit_once(';').expect("declarations").0;
        let back = matdiff::check_script(&format!("{decls}; {shown}")).expect("the target reads back");
        let inst = instance(&back, &mut rng);
        let (a, b) = (
            eval(&d.target, &inst).expect("evaluates"),
            eval(&back.target.expr, &inst).expect("evaluates"),
        );
        assert!(agree(&a, &b), "{script} shows as {shown}");
    }
}
