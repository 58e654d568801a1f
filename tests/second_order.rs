//! Second order under real numpy: the `--emit numpy` forms of Jacobians, Hessians and their
//! mixed blocks are evaluated by numpy against finite differences of the target's own numpy
//! form (a Jacobian) or of the gradient's (a Hessian), entry by entry, and their `--function`
//! forms must agree (tests/second_order_check.py). Needs a Python with numpy, as tests/numpy.rs.

mod common;

use common::shape_json;
use matdiff::fullform::{hessian, hessian_mixed, jacobian, FullForm};
use matdiff::{check_script, grad_checked, Options};
use serde_json::json;

const SEED: &str = "X : B x N; W : N x M; b : M; h = X*W + b";
const LEAST_SQUARES: &str = "X : m x n; w : n; y : m; norm(X*w - y)^2";
const LOGISTIC: &str = "X : B x N; w : N; y : B; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))";
const SOFTMAX_CE: &str = "l : n; t : n; -sum(t .* log(softmax(l)))";
const MATRIX_LEAST_SQUARES: &str = "X : B x N; W : N x M; b : M; Y : B x M; norm(X*W + b - Y)^2";

/// A residual network of `depth` tanh layers on a vector, `h_i = h_(i-1) + tanh(W_i·h_(i-1))`,
/// and the loss `sum(h_L ⊙ h_L)`: every layer's value is used twice, so its Hessian in x,
/// written as a tree, doubles with every layer.
fn residual_net(depth: usize) -> String {
    let mut parts = vec!["x : n".to_string()];
    parts.extend((1..=depth).map(|i| format!("W{i} : n x n")));
    let mut previous = "x".to_string();
    for i in 1..=depth {
        parts.push(format!("h{i} = {previous} + tanh(W{i}*{previous})"));
        previous = format!("h{i}");
    }
    parts.push(format!("sum({previous} .* {previous})"));
    parts.join("; ")
}

/// The variables of a script, as the checker draws them.
fn variables(env: &matdiff::ir::Env) -> serde_json::Map<String, serde_json::Value> {
    env.shapes
        .iter()
        .map(|(sym, shape)| (sym.to_string(), shape_json(shape, false, false)))
        .collect()
}

fn case(name: &str, form: &FullForm, of: String) -> String {
    assert!(form.check.passed(), "{name}: {form}");
    json!({
        "name": name,
        "kind": "matrix",
        "dims": form.dims.iter().collect::<Vec<_>>(),
        "variables": variables(&form.env),
        "wrt": form.wrt,
        "of": of,
        "numpy": form.numpy(),
        "function": form.numpy_function(),
        "function_name": form.function_name(),
        "function_args": form.variables,
    })
    .to_string()
}

fn jacobian_case(name: &str, script: &str, wrt: &str) -> String {
    let checked = check_script(script).unwrap();
    let form = jacobian(&checked, wrt, &Options::default()).unwrap();
    let target = matdiff::render::render(&form.target, &matdiff::render::numpy::Numpy { env: &form.env }).text;
    case(name, &form, target)
}

/// A Hessian block: finite differences of the gradient in `x` (its numpy form), along `y`.
fn hessian_case(name: &str, script: &str, x: &str, y: &str) -> String {
    let checked = check_script(script).unwrap();
    let options = Options::default();
    let form = if x == y {
        hessian(&checked, x, &options)
    } else {
        hessian_mixed(&checked, x, y, &options)
    }
    .unwrap();
    let gradient = grad_checked(&checked, x, &options).unwrap();
    assert!(gradient.check.passed(), "{name}: {gradient}");
    case(name, &form, gradient.numpy())
}

#[test]
fn jacobians_and_hessians_in_numpy_agree_with_finite_differences_in_numpy() {
    let lines = vec![
        jacobian_case("jacobian_seed_b", SEED, "b"),
        jacobian_case("jacobian_seed_W", SEED, "W"),
        jacobian_case("jacobian_seed_X", SEED, "X"),
        jacobian_case("jacobian_exp", "x : n; exp(x)", "x"),
        jacobian_case("jacobian_AXB", "A : m x n; X : n x p; B : p x q; A*X*B", "X"),
        jacobian_case("jacobian_transpose", "X : m x n; X'", "X"),
        jacobian_case("jacobian_softmax", "l : n; softmax(l)", "l"),
        hessian_case("hessian_least_squares", LEAST_SQUARES, "w", "w"),
        hessian_case("hessian_logistic", LOGISTIC, "w", "w"),
        hessian_case("hessian_softmax_ce", SOFTMAX_CE, "l", "l"),
        hessian_case("hessian_quadratic", "x : n; A : n x n; x'*A*x", "x", "x"),
        hessian_case("hessian_trace_XtAX", "X : n x m; A : n x n; tr(X'*A*X)", "X", "X"),
        hessian_case("hessian_matrix_least_squares_W", MATRIX_LEAST_SQUARES, "W", "W"),
        hessian_case("hessian_scalar", "a : scalar; x : n; sum(exp(a*x))", "a", "a"),
        hessian_case("mixed_bilinear", "x : n; y : m; A : n x m; x'*A*y", "x", "y"),
        hessian_case("mixed_least_squares_W_b", MATRIX_LEAST_SQUARES, "W", "b"),
        hessian_case("mixed_least_squares_b_W", MATRIX_LEAST_SQUARES, "b", "W"),
        hessian_case("mixed_softmax_ce_l_t", SOFTMAX_CE, "l", "t"),
        hessian_case("hessian_sum_of_softmax_is_zero", "X : m x n; sum(softmax(X))", "X", "X"),
        hessian_case("hessian_logsumexp", "x : n; logsumexp(x)", "x", "x"),
        hessian_case("hessian_residual_net", &residual_net(3), "x", "x"),
    ];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/second_order_check.py");
    common::run_python_check(script, &lines, "second order");
}

/// H·v against finite differences of the gradient (its numpy form) along v; `extra` declares v.
fn hvp_case(name: &str, script: &str, extra: &str, x: &str, v: &str) -> String {
    let checked = check_script(&format!("{extra}; {script}")).unwrap();
    let options = Options::default();
    let product = matdiff::hvp::hvp(&checked, x, v, &options).unwrap();
    assert!(product.check.passed(), "{name}: {product}");
    let gradient = grad_checked(&checked, x, &options).unwrap();
    json!({
        "name": name,
        "kind": "hvp",
        "dims": checked.dims.iter().collect::<Vec<_>>(),
        "variables": variables(&checked.env),
        "wrt": x,
        "dir": v,
        "of": gradient.numpy(),
        "numpy": product.numpy(),
        "function": product.numpy_function(),
        "function_name": format!("hvp_{x}"),
        "function_args": checked.variables,
    })
    .to_string()
}

#[test]
fn hessian_vector_products_in_numpy_agree_with_the_gradient_along_v() {
    let lines = vec![
        hvp_case("hvp_quadratic", "x : n; A : n x n; x'*A*x", "v : n", "x", "v"),
        hvp_case("hvp_least_squares", LEAST_SQUARES, "v : n", "w", "v"),
        hvp_case("hvp_logistic", LOGISTIC, "v : N", "w", "v"),
        hvp_case("hvp_softmax_ce", SOFTMAX_CE, "v : n", "l", "v"),
        hvp_case("hvp_matrix_least_squares", MATRIX_LEAST_SQUARES, "V : N x M", "W", "V"),
        hvp_case(
            "hvp_trace_XtAX",
            "X : n x m; A : n x n; tr(X'*A*X)",
            "V : n x m",
            "X",
            "V",
        ),
        hvp_case("hvp_logsumexp", "x : n; logsumexp(x)", "v : n", "x", "v"),
        hvp_case(
            "hvp_sum_of_softmax_is_zero",
            "X : m x n; sum(softmax(X))",
            "V : m x n",
            "X",
            "V",
        ),
    ];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/second_order_check.py");
    common::run_python_check(script, &lines, "second order");
}

#[test]
fn a_hessian_vector_product_needs_a_direction_of_the_variables_shape() {
    let checked = check_script("x : n; u : m; v : n; A : n x n; x'*A*x").unwrap();
    let options = Options::default();
    let e = matdiff::hvp::hvp(&checked, "x", "u", &options).unwrap_err();
    assert!(
        e.message.contains("the direction `u` is m, but `x` is n"),
        "{}",
        e.message
    );
    let e = matdiff::hvp::hvp(&checked, "x", "x", &options).unwrap_err();
    assert!(e.message.contains("is the variable itself"), "{}", e.message);
    let product = matdiff::hvp::hvp(&checked, "x", "v", &options).unwrap();
    assert_eq!(product.formula_text(), "(A + Aᵀ)·v");
}

#[test]
fn a_mixed_block_is_the_transpose_of_its_mirror() {
    let checked = check_script(MATRIX_LEAST_SQUARES).unwrap();
    let options = Options::default();
    let wb = hessian_mixed(&checked, "W", "b", &options).unwrap();
    let bw = hessian_mixed(&checked, "b", "W", &options).unwrap();
    assert!(wb.check.passed(), "{wb}");
    assert!(bw.check.passed(), "{bw}");
    let shape = |f: &FullForm| f.tensor_shape().iter().map(|d| d.to_string()).collect::<Vec<_>>();
    assert_eq!(shape(&wb), ["N", "M", "M"]);
    assert_eq!(shape(&bw), ["M", "N", "M"]);
    assert!(wb.to_string().contains("∂vec(∇_W f)/∂vec(b)"), "{wb}");
}

#[test]
fn a_planted_fault_in_a_hessian_vector_product_fails_its_check() {
    let checked = check_script("x : n; v : n; A : n x n; x'*A*x").unwrap();
    let options = Options {
        plant_fault: true,
        ..Options::default()
    };
    let product = matdiff::hvp::hvp(&checked, "x", "v", &options).unwrap();
    assert!(!product.check.passed(), "{product}");
    assert!(product.check_text().contains("CHECK FAILED"), "{product}");
}

#[test]
fn a_hessian_equal_to_zero_prints_as_zero_with_its_shape() {
    // softmax is invariant to adding a constant per row, so the sum of a softmax is constant.
    let checked = check_script("X : m x n; sum(softmax(X))").unwrap();
    let form = hessian(&checked, "X", &Options::default()).unwrap();
    assert!(form.check.passed(), "{form}");
    assert_eq!(form.matrix_text(), "0_(m·n x m·n)");
    assert!(form.derived_zero.as_ref().is_some_and(|d| d.len() > 100), "{form}");
    // The reason is the proof the rules found that the target is constant, citing the identity it rests on.
    assert_eq!(
        form.zero_reason.as_deref(),
        Some("f = sum(softmax(X)) simplifies to m, which does not depend on X (each row of E ⊘ (E·1·1ᵀ) sums to 1 (softmax))"),
        "{form}"
    );
    assert!(
        form.to_string()
            .contains("identically 0: f = sum(softmax(X)) simplifies to m"),
        "{form}"
    );
    assert_eq!(form.numpy(), "np.zeros((m*n, m*n))");
    let checked = check_script("X : m x n; V : m x n; sum(softmax(X))").unwrap();
    let product = matdiff::hvp::hvp(&checked, "X", "V", &Options::default()).unwrap();
    assert_eq!(product.formula_text(), "0_(m x n)", "{product}");
    // The canonical form takes the row scaling 1 ⊘ (E·1) out of the products, so it sees each
    // row of the softmax sum to 1: this derivative is 0 as derived, no note needed.
    assert!(product.derived_zero.is_none(), "{product}");
    // So is a gradient that vanishes by softmax's invariance to a shift of each row.
    let shifted = check_script("X : m x n; b : n; sum(softmax(X + b))").unwrap();
    let gradient = grad_checked(&shifted, "X", &Options::default()).unwrap();
    assert_eq!(gradient.formula_text(), "0_(m x n)", "{gradient}");
    assert!(
        gradient
            .check_text()
            .contains("simplifies to m, which does not depend on X (each row of E ⊘ (E·1·1ᵀ) sums to 1"),
        "{gradient}"
    );
    // Where the rules find no such proof, the note says so, and the numeric test decides.
    let centred = check_script("X : N x D; xc = X - mean(X); sum(xc)").unwrap();
    let gradient = grad_checked(&centred, "X", &Options::default()).unwrap();
    assert!(
        gradient.zero_reason.is_none() && gradient.check_text().contains("the rules did not cancel it"),
        "{gradient}"
    );
    // A Hessian that is not zero keeps its formula.
    let least_squares = hessian(&check_script(LEAST_SQUARES).unwrap(), "w", &Options::default()).unwrap();
    assert!(least_squares.derived_zero.is_none());
}

#[test]
fn the_whole_hessian_as_one_np_block_agrees_with_finite_differences_in_numpy() {
    let script = "x : n; y : m; A : n x m; sum(exp(x)) + x'*A*y + norm(y)^2";
    let matdiff = env!("CARGO_BIN_EXE_matdiff");
    let out = std::process::Command::new(matdiff)
        .args(["hessian", script, "--wrt", "all", "--emit", "numpy"])
        .output()
        .expect("matdiff runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checked = check_script(script).unwrap();
    let wrts = ["x", "y", "A"];
    let ofs: Vec<String> = wrts
        .iter()
        .map(|w| grad_checked(&checked, w, &Options::default()).unwrap().numpy())
        .collect();
    let line = json!({
        "name": "hessian_all_blocks",
        "kind": "block",
        "dims": checked.dims.iter().collect::<Vec<_>>(),
        "variables": variables(&checked.env),
        "wrts": wrts,
        "ofs": ofs,
        "numpy": String::from_utf8_lossy(&out.stdout).trim(),
    })
    .to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/second_order_check.py");
    common::run_python_check(script, &[line], "second order");
}

#[test]
fn a_deep_networks_hessian_in_numpy_grows_linearly_with_depth() {
    // Each repeated part is named once, so every layer adds about as much as the one before;
    // written out as a tree, the text form grows about fivefold per layer.
    let options = Options {
        no_check: true,
        ..Options::default()
    };
    let sizes: Vec<(usize, usize)> = (1..=6)
        .map(|depth| {
            let checked = check_script(&residual_net(depth)).unwrap();
            let form = hessian(&checked, "x", &options).unwrap();
            (form.numpy().len(), form.numpy_function().len())
        })
        .collect();
    for pick in [|s: &(usize, usize)| s.0, |s: &(usize, usize)| s.1] {
        let lengths: Vec<usize> = sizes.iter().map(pick).collect();
        let first = lengths[1] - lengths[0];
        for pair in lengths.windows(2) {
            assert!(pair[1] > pair[0], "{lengths:?}");
            assert!(pair[1] - pair[0] <= 2 * first, "not linear in depth: {lengths:?}");
        }
    }
}

#[test]
fn the_softmax_cross_entropys_mixed_block_is_written_with_softmax() {
    // ∇_l f = sum(t)·softmax(l) − t, so its Jacobian in t is softmax(l)·1ᵀ − I.
    let checked = check_script(SOFTMAX_CE).unwrap();
    let block = hessian_mixed(&checked, "l", "t", &Options::default()).unwrap();
    assert!(block.check.passed(), "{block}");
    assert_eq!(block.matrix_text(), "softmax(l)·1_nᵀ − I_n");
}
