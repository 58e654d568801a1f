use super::*;
use crate::dim::{Dim, Shape};

fn env(square: &[&str], vectors: &[&str], scalars: &[&str]) -> Env {
    let mut env = Env::default();
    let n = || Dim::named("n");
    for s in square {
        env.shapes.insert(Symbol::from(*s), Shape::new(n(), n()));
    }
    for s in vectors {
        env.shapes.insert(Symbol::from(*s), Shape::new(n(), Dim::one()));
    }
    for s in scalars {
        env.shapes.insert(Symbol::from(*s), Shape::scalar());
    }
    env
}

fn canon_with(env: &Env, reading: &str, definitions: &[(&str, &str)], expr: &str) -> String {
    let mut order = ReadingOrder::default();
    order.read(&reading.parse().expect("an expression"));
    let bodies: Vec<(Symbol, RecExpr<Math>)> = definitions
        .iter()
        .map(|(name, body)| (Symbol::from(*name), body.parse().expect("an expression")))
        .collect();
    let borrowed: Vec<(Symbol, &RecExpr<Math>)> = bodies.iter().map(|(s, b)| (*s, b)).collect();
    canonical(env, &order, &borrowed, &expr.parse().expect("an expression"))
        .expect("within budget")
        .to_string()
}

fn canon(expr: &str) -> String {
    let env = env(&["A", "B", "X"], &["x", "y", "mu"], &["s", "t"]);
    canon_with(&env, expr, &[], expr)
}

#[test]
fn numbers_fold_and_scalar_factors_meet_once() {
    assert_eq!(canon("(scale 0.5 (scale 2 x))"), "x");
    assert_eq!(canon("(scale (scale (scale s 0.5) 2) (scale (pow s -1) x))"), "x");
    assert_eq!(canon("(scale s (scale s x))"), "(scale (pow s 2) x)");
}

#[test]
fn like_terms_combine_and_cancel() {
    assert_eq!(canon("(+ (scale s x) (scale s x))"), "(scale 2 (scale s x))");
    assert_eq!(canon("(+ x (scale -1 x))"), "(zeros @n @1)");
    // 0.5·x − 0.5·μ and μ − x are one factor: −S⁻¹(x − μ) twice over.
    assert_eq!(
        canon("(+ (* A (+ (scale 0.5 x) (scale -0.5 mu))) (* A (+ mu (scale -1 x))))"),
        "(scale -0.5 (* A (+ (scale -1 mu) x)))"
    );
}

#[test]
fn what_every_term_shares_comes_out() {
    assert_eq!(
        canon("(+ (scale s x) (scale -1 (scale s y)))"),
        "(scale s (+ x (scale -1 y)))"
    );
    assert_eq!(canon("(+ (scale 2 x) (scale -2 y))"), "(scale 2 (+ x (scale -1 y)))");
}

#[test]
fn inverse_pairs_cancel_through_products_and_transposes() {
    assert_eq!(canon("(* A (* (inv A) B))"), "B");
    // Aᵀ·(A·X·B)⁻ᵀ·Bᵀ = X⁻ᵀ (Cookbook eq. 1 peels the square factors off).
    assert_eq!(canon("(* (T A) (* (T (inv (* A (* X B)))) (T B)))"), "(inv (T X))");
    assert_eq!(canon("(* (inv (* A B)) A)"), "(inv B)");
    assert_eq!(canon("(* (inv (* A B)) B)"), "(* (inv (* A B)) B)");
    // The inverse of a power is the power of the inverse.
    assert_eq!(canon("(* X (inv (* X (* X X))))"), "(* (inv X) (inv X))");
}

#[test]
fn a_sum_keeps_the_sign_of_its_first_name() {
    assert_eq!(canon("(* A (+ (scale -1 x) y))"), "(scale -1 (* A (+ x (scale -1 y))))");
    // The terms of a sum are in a fixed order; the reading order only sets the signs.
    assert_eq!(canon("(* A (+ y (scale -1 x)))"), "(* A (+ (scale -1 x) y))");
}

#[test]
fn elementwise_factors_cancel_then_sums_multiply_out_when_that_cancels() {
    // Logistic regression: ((1 − t) ⊘ (1 − p) − t ⊘ p) ⊙ p ⊙ (1 − p) = p − t.
    let ones = "(ones @n @1)";
    let one_minus = |v: &str| format!("(+ {ones} (scale -1 {v}))");
    let expr = format!(
        "(.* (+ (./ {} {}) (scale -1 (./ t p))) (.* p {}))",
        one_minus("t"),
        one_minus("p"),
        one_minus("p")
    );
    let env = env(&[], &["t", "p"], &[]);
    assert_eq!(canon_with(&env, "(+ p t)", &[], &expr), "(+ p (scale -1 t))");
    // Nothing cancels: the sum stays one factor.
    let kept = format!("(.* t {})", one_minus("p"));
    assert_eq!(
        canon_with(&env, "(+ p t)", &[], &kept),
        format!("(.* t (+ (scale -1 p) {ones}))")
    );
}

#[test]
fn definitions_stand_for_their_bodies() {
    let mut env = env(&["A", "B"], &["x", "y"], &[]);
    env.shapes
        .insert(Symbol::from("h"), Shape::new(Dim::named("n"), Dim::one()));
    let definitions = [("h", "(+ (* A x) y)")];
    let reading = "(+ (* A x) y)";
    assert_eq!(
        canon_with(&env, reading, &definitions, "(* B (+ y (* A x)))"),
        "(* B h)"
    );
    assert_eq!(canon_with(&env, reading, &definitions, "(T (+ y (* A x)))"), "(T h)");
    assert_eq!(
        canon_with(&env, reading, &definitions, "(+ (scale 2 y) (+ x (scale 2 (* A x))))"),
        "(+ (scale 2 h) x)"
    );
}

#[test]
fn a_centred_definition_sums_to_zero_along_its_axis() {
    let mut env = env(&["A", "X"], &["w"], &[]);
    let n = || Dim::named("n");
    env.shapes.insert(Symbol::from("mu"), Shape::new(n(), Dim::one()));
    env.shapes.insert(Symbol::from("xc"), Shape::new(n(), n()));
    let mu = "(scale (pow (dim @n) -1) (* (T X) (ones @n @1)))";
    let xc = format!("(+ X (scale -1 (* (ones @n @1) (T {mu}))))");
    let definitions = [("mu", mu), ("xc", xc.as_str())];
    // 1ᵀ·xc = 1ᵀ·X − n·μᵀ = 0, also with xc's columns scaled: 1ᵀ·(xc ⊙ 1·wᵀ) = (1ᵀ·xc)·diag(w).
    let scaled = format!("(* (ones @1 @n) (.* {xc} (* (ones @n @1) (T w))))");
    assert_eq!(canon_with(&env, &xc, &definitions, &scaled), "(zeros @1 @n)");
    // A sum is multiplied out where that makes a term vanish; xc·1 is no zero.
    let sum = format!("(* (ones @1 @n) (+ A (scale 2 {xc})))");
    assert_eq!(canon_with(&env, &xc, &definitions, &sum), "(* (ones @1 @n) A)");
    let rows = format!("(* {xc} (ones @n @1))");
    assert_eq!(canon_with(&env, &xc, &definitions, &rows), "(* xc (ones @n @1))");
}

#[test]
fn row_and_column_scalings_come_out_of_products_and_transposes() {
    // (A ⊙ x·1ᵀ)·B = diag(x)·A·B = (A·B) ⊙ x·1ᵀ.
    assert_eq!(
        canon("(* (.* A (* x (ones @1 @n))) B)"),
        "(.* (* x (ones @1 @n)) (* A B))"
    );
    // ((x·1ᵀ) ⊘ (y·1ᵀ))ᵀ = (1·xᵀ) ⊘ (1·yᵀ), and a broadcast of a monomial is split: (x ⊘ y)·1ᵀ.
    assert_eq!(
        canon("(T (./ (* x (ones @1 @n)) (* y (ones @1 @n))))"),
        "(./ (* (ones @n @1) (T x)) (* (ones @n @1) (T y)))"
    );
    assert_eq!(
        canon("(* (./ x y) (ones @1 @n))"),
        "(./ (* x (ones @1 @n)) (* y (ones @1 @n)))"
    );
}

#[test]
fn an_elementwise_definition_is_named_inside_a_monomial() {
    let mut env = env(&["A", "B", "X"], &[], &[]);
    env.shapes
        .insert(Symbol::from("h"), Shape::new(Dim::named("n"), Dim::named("n")));
    let definitions = [("h", "(./ A B)")];
    // A ⊙ X ⊘ B.^2 = (A ⊘ B) ⊙ X ⊘ B.
    assert_eq!(
        canon_with(&env, "(./ A B)", &definitions, "(.* A (./ X (.^ B 2)))"),
        "(.* (./ h B) X)"
    );
}

#[test]
fn a_canonical_form_that_would_not_share_its_factors_is_refused() {
    let env = env(&["A"], &["x"], &[]);
    // Σ Aᵏ·x·xᵀ·Aᵏ: the input shares each Aᵏ, the flattened products share nothing.
    let mut b = ExprBuilder::default();
    let (a, x) = (b.add(Math::Symbol("A".into())), b.add(Math::Symbol("x".into())));
    let xt = b.add(Math::Transpose(x));
    let outer = b.add(Math::Mul([x, xt]));
    let mut power = a;
    let mut sum = None;
    for _ in 0..300 {
        power = b.add(Math::Mul([power, a]));
        let left = b.add(Math::Mul([power, outer]));
        let term = b.add(Math::Mul([left, power]));
        sum = Some(sum.map_or(term, |s| b.add(Math::Add([s, term]))));
    }
    let parsed = b.finish();
    let out = canonical(&env, &ReadingOrder::default(), &[], &parsed);
    assert!(
        out.is_none(),
        "{} nodes from {}",
        out.map_or(0, |o| o.as_ref().len()),
        parsed.as_ref().len()
    );
}

/// A random elementwise expression over the vectors x, y, z and the scalar s: sums,
/// scalings, Hadamard products and quotients, powers (whole and not, of either sign) and
/// functions of the operator table.
fn random_vector_expr(rng: &mut rand_chacha::ChaCha8Rng, depth: usize, out: &mut RecExpr<Math>) -> Id {
    use rand::RngExt;
    let leaf = depth == 0 || rng.random_bool(0.25);
    if leaf {
        let name = ["x", "y", "z"][rng.random_range(0..3)];
        return out.add(Math::Symbol(Symbol::from(name)));
    }
    let sub = |rng: &mut rand_chacha::ChaCha8Rng, out: &mut RecExpr<Math>| random_vector_expr(rng, depth - 1, out);
    match rng.random_range(0..6) {
        0 => {
            let (a, b) = (sub(rng, out), sub(rng, out));
            out.add(Math::Add([a, b]))
        }
        1 => {
            let k = if rng.random_bool(0.5) {
                out.add(Math::Symbol(Symbol::from("s")))
            } else {
                out.add(Math::Num(crate::ir::Const(
                    [-2.0, -1.0, 0.5, 3.0][rng.random_range(0..4)],
                )))
            };
            let a = sub(rng, out);
            out.add(Math::Scale([k, a]))
        }
        2 => {
            let (a, b) = (sub(rng, out), sub(rng, out));
            out.add(Math::Had([a, b]))
        }
        3 => {
            let (a, b) = (sub(rng, out), sub(rng, out));
            out.add(Math::HDiv([a, b]))
        }
        4 => {
            let a = sub(rng, out);
            let k = [-2.0, -1.0, -0.5, 0.5, 2.0, 3.0][rng.random_range(0..6)];
            let k = out.add(Math::Num(crate::ir::Const(k)));
            out.add(Math::EPow([a, k]))
        }
        _ => {
            let a = sub(rng, out);
            let f = crate::ops::Func::ALL
                .iter()
                .copied()
                .filter(|f| f.spec().parameter.is_none())
                .nth(rng.random_range(0..8))
                .expect("a function");
            out.add(Math::function(f, &[a]))
        }
    }
}

#[test]
fn the_canonical_form_equals_its_input_numerically() {
    use crate::numeric::{eval, Instance, Matrix};
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let env = env(&[], &["x", "y", "z"], &["s"]);
    let regression: RecExpr<Math> = "(.* (.^ (.^ x -2) -0.5) (.^ x -1))".parse().expect("an expression");
    let mut cases = vec![regression];
    for _ in 0..3000 {
        let mut expr = RecExpr::default();
        random_vector_expr(&mut rng, 4, &mut expr);
        cases.push(expr);
    }
    for expr in cases {
        let mut order = ReadingOrder::default();
        order.read(&expr);
        let Some(canon) = canonical(&env, &order, &[], &expr) else {
            continue;
        };
        for _ in 0..4 {
            let mut inst = Instance::default();
            inst.sizes.insert("n".into(), 3);
            for (name, rows) in [("x", 3), ("y", 3), ("z", 3), ("s", 1)] {
                let value = Matrix::from_fn(rows, 1, |_, _| {
                    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    sign * rng.random_range(0.25..1.25)
                });
                inst.values.insert(Symbol::from(name), value);
            }
            let (Ok(a), Ok(b)) = (eval(&expr, &inst), eval(&canon, &inst)) else {
                continue;
            };
            let scale = a.amax().max(b.amax()).max(1.0);
            assert!(
                (&a - &b).amax() <= 1e-9 * scale,
                "{expr} is {a}, but its canonical form {canon} is {b}"
            );
        }
    }
}

fn folded(expr: &str) -> String {
    let env = env(&["A", "B", "X"], &["x", "y", "mu"], &["s", "t"]);
    fold_zeros(&env, &expr.parse().expect("an expression")).to_string()
}

#[test]
fn zero_subexpressions_fold_and_the_rest_stays_as_written() {
    // A − A in a product through a scaling: the whole product is zero.
    assert_eq!(folded("(* (T x) (* (scale (pow s -1) (+ A (scale -1 A))) y))"), "0");
    assert_eq!(folded("(scale 0 X)"), "(zeros @n @n)");
    // A zero term leaves the other term as written (B·B is not rearranged).
    assert_eq!(folded("(+ (* B B) (+ A (scale -1 A)))"), "(* B B)");
    // Nothing to fold: unchanged.
    assert_eq!(folded("(+ (* B B) A)"), "(+ (* B B) A)");
    // A quotient by zero is undefined, not zero.
    assert_eq!(folded("(./ X (+ A (scale -1 A)))"), "(./ X (+ A (scale -1 A)))");
}

#[test]
fn dependence_is_read_from_the_canonical_form() {
    let env = env(&["A", "B", "X"], &["x", "y", "mu"], &["s", "t"]);
    let depends = |e: &str, v: &str| depends_on(&env, &e.parse().expect("an expression"), Symbol::from(v));
    assert!(!depends("(sum (+ A (scale -1 A)))", "A"));
    assert!(!depends("(sum B)", "A"));
    assert!(depends("(sum (+ A (scale -2 A)))", "A"));
    assert!(depends("(tr (* A B))", "A"));
}
