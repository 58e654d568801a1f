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
