//! Zero subexpressions folded before any e-graph sees them, and whether an expression
//! depends on a variable at all.
//!
//! Inside an e-graph a zero is a trap: once `A − A` is found equal to `0`, the class of
//! zeros holds `0·X` for every X of its shape, associativity and commutativity rearrange
//! each of those, and a three-line script fills the node limit (issue 22). On the tree,
//! the canonical form already knows which nodes are zero (their sums are empty); here
//! those nodes are replaced by a zero of their shape and the rest is kept as written.

use super::*;

/// `expr` with every subexpression whose canonical form is zero (`A − A`, `0·X`, a product
/// with such a factor, `s·(B − B)ᵀ`) replaced by a zero of its shape, and `x + 0` by `x`.
/// The rest stays as written. Unchanged when there is nothing to fold, when the canonical
/// form would outgrow its budget, or when something divides by a zero (`x ⊘ (A − A)` is
/// undefined, not zero).
pub fn fold_zeros(env: &Env, expr: &RecExpr<Math>) -> RecExpr<Math> {
    let nodes = expr.as_ref();
    let Some(zero) = zero_nodes(env, expr) else {
        return expr.clone();
    };
    if !zero.iter().any(|&z| z) || nodes.is_empty() {
        return expr.clone();
    }
    let data = expr_data(env, expr);
    // A sum with a zero term is its other term; only what the root still reaches is
    // rebuilt, so no folded-away `A − A` is left lying in the expression for an e-graph to add.
    let through = |i: usize| -> Vec<Id> {
        match &nodes[i] {
            Math::Add([a, b]) if zero[usize::from(*a)] => vec![*b],
            Math::Add([a, b]) if zero[usize::from(*b)] => vec![*a],
            node => node.children().to_vec(),
        }
    };
    let mut reached = vec![false; nodes.len()];
    reached[nodes.len() - 1] = true;
    for i in (0..nodes.len()).rev() {
        if reached[i] && !zero[i] {
            for c in through(i) {
                reached[usize::from(c)] = true;
            }
        }
    }
    let mut out = ExprBuilder::default();
    let mut new_id: Vec<Option<Id>> = vec![None; nodes.len()];
    for i in 0..nodes.len() {
        if !reached[i] {
            continue;
        }
        let id = match (&nodes[i], data[i].shape()) {
            (_, Some(shape)) if zero[i] && shape.is_scalar() => out.num(0.0),
            (_, Some(shape)) if zero[i] => {
                let (r, c) = (out.dim(&shape.rows), out.dim(&shape.cols));
                out.add(Math::Zeros([r, c]))
            }
            (Math::Add(_), _) if through(i).len() == 1 => new_id[usize::from(through(i)[0])].expect("built before"),
            (node, _) => {
                let node = node
                    .clone()
                    .map_children(|c| new_id[usize::from(c)].expect("children come first"));
                out.add(node)
            }
        };
        new_id[i] = Some(id);
    }
    out.finish()
}

/// Whether `expr`'s value can change with `var`: its canonical form (or, when that is
/// refused, the expression itself) mentions `var`. `softmax` of a scalar is 1 and `A − A`
/// is 0 whatever A is.
pub fn depends_on(env: &Env, expr: &RecExpr<Math>, var: Symbol) -> bool {
    let mentions = |e: &RecExpr<Math>| e.as_ref().iter().any(|n| *n == Math::Symbol(var));
    if !mentions(expr) {
        return false;
    }
    // The canonical form of a target that fans out grows with it written as a tree.
    if crate::derive::fans_out(expr) {
        return true;
    }
    let reading = ReadingOrder::default();
    canonical(env, &reading, &[], expr).is_none_or(|c| mentions(&c))
}

/// Which nodes of `expr` are zero; `None` when that cannot be told safely.
fn zero_nodes(env: &Env, expr: &RecExpr<Math>) -> Option<Vec<bool>> {
    // Canonical forms grow with an expression written as a tree: through a chain of
    // fan-outs (a residual network), exponentially.
    if crate::derive::fans_out(expr) {
        return None;
    }
    let reading = ReadingOrder::default();
    let mut canon = Canon::new(env, &reading, expr.as_ref().len());
    let input = expr_data(env, expr);
    let mut polys: Vec<Poly> = Vec::with_capacity(input.len());
    let mut zero = Vec::with_capacity(input.len());
    for (node, data) in expr.as_ref().iter().zip(&input) {
        if canon.data.len() > canon.budget {
            return None;
        }
        // The canonical form drops a quotient by zero with its numerator; that is no zero.
        if let Math::HDiv([_, b]) | Math::Inv(b) = node {
            if zero[usize::from(*b)] {
                return None;
            }
        }
        let poly = canon.poly(node, data, &polys, &input);
        zero.push(poly.0.is_empty() && data.shape().is_some());
        polys.push(poly);
    }
    Some(zero)
}
