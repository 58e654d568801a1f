//! Gradients through fan-out stay linear in size: random DAGs whose values are used more
//! than once (residual connections, a value multiplied by a function of itself, skips to
//! any earlier layer) are derived, checked, and their shown output (formula and `where`
//! lines) must stay within a constant times the script's length. Without named upstream
//! gradients the output of such a DAG doubles with every layer. Doubling a random DAG's
//! depth (its layers repeated) at most about doubles all its gradients, every one checked.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// How layer i is built from the earlier ones (`p` is the previous layer, `s` an earlier one).
#[derive(Debug, Clone, Copy)]
enum Layer {
    /// `p + tanh(p·Wi)`: the residual block.
    Residual,
    /// `p ⊙ tanh(s·Wi)`: a gate.
    Gate,
    /// `tanh(p·Wi) + s`: a skip from further back.
    Skip,
}

fn script(layers: &[(Layer, usize)]) -> String {
    let mut parts = vec!["X : B x N".to_string()];
    parts.extend((1..=layers.len()).map(|i| format!("W{i} : N x N")));
    let name = |k: usize| if k == 0 { "X".to_string() } else { format!("h{k}") };
    for (i, (layer, back)) in layers.iter().enumerate() {
        let i = i + 1;
        let p = name(i - 1);
        let s = name((i - 1).saturating_sub(*back));
        parts.push(match layer {
            Layer::Residual => format!("h{i} = {p} + tanh({p}*W{i})"),
            Layer::Gate => format!("h{i} = {p} .* tanh({s}*W{i})"),
            Layer::Skip => format!("h{i} = tanh({p}*W{i}) + {s}"),
        });
    }
    let last = layers.len();
    parts.push(format!("sum(h{last} .* h{last})"));
    parts.join("; ")
}

fn layers() -> impl Strategy<Value = Vec<(Layer, usize)>> {
    let layer = prop_oneof![Just(Layer::Residual), Just(Layer::Gate), Just(Layer::Skip)];
    prop::collection::vec((layer, 0usize..3), 2..7)
}

/// The text a user reads: the formula line and the definitions it names.
fn shown(d: &matdiff::Derivation) -> usize {
    d.formula_text().chars().count() + d.where_text().map_or(0, |w| w.chars().count())
}

#[test]
fn output_is_linear_in_the_script_on_random_dags_with_fan_out() {
    let config = Config {
        cases: 24,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    runner
        .run(&layers(), |layers| {
            let text = script(&layers);
            let d = matdiff::grad(&text, "W1").map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
            prop_assert!(d.check.passed(), "{text}: {}", d.check_text());
            // Each definition is shown once (about the script's length) and each named
            // upstream is a few operators over names: a constant times the script.
            prop_assert!(
                shown(&d) <= 8 * text.len(),
                "{text}: {} shown characters\n{d}",
                shown(&d)
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_residual_network_names_its_upstreams_and_grows_linearly() {
    let residual = |l: usize| script(&vec![(Layer::Residual, 0); l]);
    let sizes: Vec<(usize, usize)> = [8, 16]
        .iter()
        .map(|&l| {
            let d = matdiff::grad(&residual(l), "W1").unwrap();
            assert!(d.check.passed(), "{}", d.check_text());
            assert!(!d.shared.is_empty(), "L = {l} names no upstream:\n{d}");
            (shown(&d), d.numpy().len())
        })
        .collect();
    // Doubling the depth at most a little more than doubles the output (it quadrupled),
    // the numpy expression too (it shares the named upstreams).
    assert!(sizes[1].0 <= 3 * sizes[0].0, "{sizes:?}");
    assert!(sizes[1].1 <= 3 * sizes[0].1, "{sizes:?}");
}

#[test]
fn no_upstream_is_named_without_fan_out() {
    let d = matdiff::grad("X : B x N; W : N x M; b : M; h = X*W + b", "b").unwrap();
    assert!(d.shared.is_empty());
    let mlp = "x : N; y : H; W1 : H x N; W2 : H x H; h1 = tanh(W1*x); h2 = tanh(W2*h1); sum((h2 - y).^2)";
    assert!(matdiff::grad(mlp, "W1").unwrap().shared.is_empty());
}

/// How layer i of a doubling test is built (`p` the previous layer, `s` an earlier one).
#[derive(Debug, Clone, Copy)]
enum Step {
    /// `p + tanh(p·Wi)`: the residual block.
    Residual,
    /// `p ⊙ tanh(s·Wi)`: a gate.
    Gate,
    /// `relu(p·Wi) + s`: a skip from further back.
    Skip,
    /// `p + tanh(p·Wj)`: the weights of an earlier layer, used again.
    Shared,
    /// `p ⊙ σ(p·Wi)`: the previous layer used twice in one product.
    SelfGate,
}

/// The script of `steps` and the variables it uses (`X` and the weights).
fn stepped(steps: &[(Step, usize)]) -> (String, Vec<String>) {
    let name = |k: usize| if k == 0 { "X".to_string() } else { format!("h{k}") };
    let mut weights: Vec<String> = Vec::new();
    let mut body = Vec::new();
    for (i, (step, back)) in steps.iter().enumerate() {
        let i = i + 1;
        let p = name(i - 1);
        let s = name((i - 1).saturating_sub(*back));
        let own = format!("W{i}");
        let w = match step {
            Step::Shared if !weights.is_empty() => weights[weights.len() - 1 - back % weights.len()].clone(),
            _ => own,
        };
        if !weights.contains(&w) {
            weights.push(w.clone());
        }
        body.push(match step {
            Step::Residual | Step::Shared => format!("h{i} = {p} + tanh({p}*{w})"),
            Step::Gate => format!("h{i} = {p} .* tanh({s}*{w})"),
            Step::Skip => format!("h{i} = relu({p}*{w}) + {s}"),
            Step::SelfGate => format!("h{i} = {p} .* sigmoid({p}*{w})"),
        });
    }
    let last = steps.len();
    let mut parts = vec!["X : B x N".to_string()];
    parts.extend(weights.iter().map(|w| format!("{w} : N x N")));
    parts.extend(body);
    parts.push(format!("sum(h{last} .* h{last})"));
    let mut variables = vec!["X".to_string()];
    variables.extend(weights);
    (parts.join("; "), variables)
}

/// Every gradient of `script`, each checked, and the characters a user reads: each
/// formula, and the definitions they are written with, each once.
fn every_gradient_shown(script: &str, variables: &[String]) -> Result<usize, TestCaseError> {
    let checked = matdiff::check_script(script).map_err(|e| TestCaseError::fail(format!("{script}: {e:?}")))?;
    let wrts: Vec<&str> = variables.iter().map(String::as_str).collect();
    let all = matdiff::grad_all(&checked, &wrts, &matdiff::Options::default())
        .map_err(|e| TestCaseError::fail(format!("{script}: {e:?}")))?;
    let mut union = all[0].clone();
    union.definitions.clear();
    for d in &all {
        prop_assert!(d.check.passed(), "{script}: ∂/∂{}: {}", d.wrt, d.check_text());
        for def in &d.definitions {
            if !union.definitions.iter().any(|(n, _)| *n == def.0) {
                union.definitions.push(def.clone());
            }
        }
    }
    let formulas: usize = all.iter().map(|d| d.formula_text().chars().count()).sum();
    Ok(formulas + union.where_text().map_or(0, |w| w.chars().count()))
}

#[test]
fn doubling_a_random_dag_at_most_doubles_every_gradient_shown() {
    let step = prop_oneof![
        Just(Step::Residual),
        Just(Step::Gate),
        Just(Step::Skip),
        Just(Step::Shared),
        Just(Step::SelfGate)
    ];
    let config = Config {
        cases: 16,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[20; 32]));
    runner
        .run(&prop::collection::vec((step, 0usize..3), 2..6), |steps| {
            let (short, short_vars) = stepped(&steps);
            let twice: Vec<(Step, usize)> = steps.iter().chain(&steps).copied().collect();
            let (long, long_vars) = stepped(&twice);
            let l = every_gradient_shown(&short, &short_vars)?;
            let l2 = every_gradient_shown(&long, &long_vars)?;
            // Linear: twice the layers, about twice the text (a fixed part aside). Without
            // named upstreams each repeat of a fan-out multiplies it instead.
            prop_assert!(
                l2 * 2 <= 5 * l + 400,
                "depth {}: {l} characters, depth {}: {l2}\n{short}\n{long}",
                steps.len(),
                twice.len()
            );
            Ok(())
        })
        .unwrap();
}
