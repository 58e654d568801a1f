//! What is printed is input: every corpus case's derived formula, printed in text, parses
//! back in its own script (with the upstream `G` declared) as the same function, compared
//! numerically on random instances; so does the target as displayed.

mod common;

use common::{load_cases, options_for, read_back_script};
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

/// Reads `text` back after `script`'s statements and compares it with `expected` on random
/// instances; the failure, if any, in words.
fn reads_back_as(
    script: &str,
    text: &str,
    expected: &egg::RecExpr<matdiff::ir::Math>,
    rng: &mut ChaCha8Rng,
) -> Result<(), String> {
    let read_back = format!("{script}\nread_back__ = {text}");
    let checked = matdiff::check_script(&read_back)
        .map_err(|e| format!("`{text}` does not parse: {}", e.render("rt", &read_back, false)))?;
    for _ in 0..3 {
        let inst = instance(&checked, rng);
        if let (Ok(a), Ok(b)) = (eval(expected, &inst), eval(&checked.target.expr, &inst)) {
            if !agree(&a, &b) {
                return Err(format!("`{text}` reads back as another function ({a} vs {b})"));
            }
        }
    }
    Ok(())
}

/// The full forms' notation (`K_(m,n)`, `vec`, `e_(i of m)`, block sums, sizes such as `n·n`) is
/// input too: every Jacobian and Hessian printed, and the compact contraction `Jᵀ·vec(G)`
/// beside it, reads back as the same matrix.
#[test]
fn every_printed_full_form_reads_back_as_the_same_matrix() {
    use matdiff::fullform::{hessian, jacobian};
    let jacobians = [
        ("X : B x N; W : N x M; b : M; h = X*W + b", "b"),
        ("X : B x N; W : N x M; b : M; h = X*W + b", "W"),
        ("X : B x N; W : N x M; b : M; h = X*W + b", "X"),
        ("A : m x n; X : n x p; B : p x q; A*X*B", "X"),
        ("X : m x n; X'", "X"),
        ("X : n x n; inv(X)", "X"),
        ("x : n; exp(x)", "x"),
        ("l : n; softmax(l)", "l"),
        ("X : m x n; Y : m x n; X .* Y", "X"),
        ("X : m x n; sum(X)", "X"),
        ("X : m x n; X * ones(n)", "X"),
        ("X : m x n; tanh(X')", "X"),
    ];
    let hessians = [
        ("x : n; A : n x n; x'*A*x", "x"),
        ("X : m x n; w : n; y : m; norm(X*w - y)^2", "w"),
        ("X : n x m; A : n x n; tr(X'*A*X)", "X"),
        ("l : n; t : n; -t' * log(softmax(l))", "l"),
        ("x : n; logsumexp(x)", "x"),
        ("X : m x n; sum(X .* X .* X)", "X"),
        ("X : n x n; logdet(X)", "X"),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut failures = Vec::new();
    let forms = jacobians
        .iter()
        .map(|(s, w)| {
            (
                s,
                w,
                jacobian(&matdiff::check_script(s).unwrap(), w, &matdiff::Options::default()),
            )
        })
        .chain(hessians.iter().map(|(s, w)| {
            (
                s,
                w,
                hessian(&matdiff::check_script(s).unwrap(), w, &matdiff::Options::default()),
            )
        }));
    for (script, wrt, form) in forms {
        let f = form.unwrap_or_else(|e| panic!("{script} wrt {wrt}: {e:?}"));
        if let Err(e) = reads_back_as(script, &f.matrix_text(), &f.matrix, &mut rng) {
            failures.push(format!("{script} wrt {wrt}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_full_form_notation_is_input() {
    let pairs = [
        ("X : m x n; K_(m,n)*vec(X)", "X : m x n; vec(X')"),
        ("x : n; e_(2 of n)' * x", "x : n; x' * unit(n, 2)"),
        ("X : 2*m x 3*n; blocksum_(2 x 3)(X)", "X : 2*m x 3*n; blocksum(X, 2, 3)"),
        ("X : m x n; sum(1_(m·n)' * vec(X))", "X : m x n; sum(X)"),
        ("X : m x n; I_(m·n) * vec(X)", "X : m x n; vec(X)"),
        ("X : m x n; 0_(m·n x 1) + vec(X)", "X : m x n; vec(X)"),
        ("X : m x n; sum(ismax(X) .* X)", "X : m x n; sum(ismax(X) .* X)"),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for (printed, plain) in pairs {
        let b = matdiff::check_script(plain).unwrap_or_else(|e| panic!("{plain}: {e:?}"));
        let decls = plain.rsplit_once(';').expect("declarations").0;
        let shown = printed.rsplit_once(';').expect("declarations").1;
        if let Err(e) = reads_back_as(decls, shown, &b.target.expr, &mut rng) {
            panic!("{printed}: {e}");
        }
    }
}

/// A matdiff declaration of every variable of `env` (and the upstream): the numpy dialect's
/// parameters as the matrix language writes them.
fn declarations(env: &matdiff::ir::Env, upstream: &Option<(egg::Symbol, matdiff::dim::Shape)>) -> String {
    let mut shapes: std::collections::BTreeMap<String, matdiff::dim::Shape> =
        env.shapes.iter().map(|(n, s)| (n.to_string(), s.clone())).collect();
    shapes.extend(upstream.iter().map(|(n, s)| (n.to_string(), s.clone())));
    shapes
        .iter()
        .map(|(n, s)| {
            if s.is_scalar() {
                format!("{n} : scalar")
            } else {
                format!("{n} : {} x {}", s.rows.render("*"), s.cols.render("*"))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a numpy layer's derivation shows — each gradient with its `where` lines, and the
/// target — read back as a script of the matrix language, is the same function: one-hot
/// labels drawn one-hot, every other parameter at random.
#[test]
fn every_numpy_layer_reads_back_as_shown() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/numpy");
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let (mut failures, mut compared) = (Vec::new(), 0);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|x| x == "py")) {
        let source = std::fs::read_to_string(path).expect("reads");
        let name = path.file_name().expect("a file").to_string_lossy().into_owned();
        let program = matdiff::numpy_dialect::read(&source, None).expect("the case reads");
        let pass = program
            .backward(&program.variables, &matdiff::Options::default())
            .expect("derives");
        for d in &pass.gradients {
            let mut script = declarations(&d.env, &d.upstream);
            // The `where` lines of the whole pass, as shown, each after the names it uses.
            let mut pending: Vec<&(String, egg::RecExpr<matdiff::ir::Math>)> =
                pass.gradients.iter().flat_map(|g| &g.definitions).collect();
            let mut defined: std::collections::BTreeSet<String> = d.env.shapes.keys().map(|s| s.to_string()).collect();
            while !pending.is_empty() {
                let before = pending.len();
                pending.retain(|(n, e)| {
                    let ready = e.iter().all(|node| match node {
                        matdiff::ir::Math::Symbol(s) => {
                            defined.contains(s.as_str()) || d.upstream.as_ref().is_some_and(|(g, _)| g == s)
                        }
                        _ => true,
                    });
                    if ready && defined.insert(n.clone()) {
                        script.push_str(&format!(
                            "\n{n} = {}",
                            matdiff::render::render(e, &matdiff::render::text::Text).text
                        ));
                    }
                    !ready
                });
                if pending.len() == before {
                    break;
                }
            }
            if let Some(target) = &d.target_name {
                script.push_str(&format!("\n{target} = {}", d.target_text()));
            }
            let shown = matdiff::render::render(&d.named, &matdiff::render::text::Text).text;
            let read_back = format!("{script}\nread_back__ = {shown}");
            let checked = match matdiff::check_script(&read_back) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!(
                        "{name} ∂/∂{}: does not parse: {}",
                        d.wrt,
                        e.render("rt", &read_back, false)
                    ));
                    continue;
                }
            };
            let mut inst = instance(&checked, &mut rng);
            for label in &d.env.onehot {
                if let Some(m) = inst.values.get_mut(label) {
                    let cols = m.ncols();
                    for r in 0..m.nrows() {
                        let hot = rng.random_range(0..cols);
                        for c in 0..cols {
                            m[(r, c)] = if c == hot { 1.0 } else { 0.0 };
                        }
                    }
                }
            }
            let undefined: Vec<&String> = checked
                .variables
                .iter()
                .filter(|v| {
                    !d.env.shapes.contains_key(&egg::Symbol::from(v.as_str()))
                        && d.upstream.as_ref().is_none_or(|(g, _)| g.as_str() != v.as_str())
                })
                .collect();
            if !undefined.is_empty() {
                failures.push(format!(
                    "{name} ∂/∂{}: the display uses {undefined:?}, which it does not define\n{read_back}",
                    d.wrt
                ));
                continue;
            }
            match (eval(&d.formula, &inst), eval(&checked.target.expr, &inst)) {
                (Ok(a), Ok(b)) if agree(&a, &b) => compared += 1,
                (Ok(a), Ok(b)) => failures.push(format!(
                    "{name} ∂/∂{}: `{shown}` reads back as another function ({a} vs {b})\n{read_back}",
                    d.wrt
                )),
                _ => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} do not read back:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared > 150, "only {compared} compared");
}
