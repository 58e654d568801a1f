//! Every rewrite of the tables checked numerically, as egg's own tests check theirs: both
//! sides evaluated on random instances of valid shapes (each pattern variable a matrix,
//! vector or scalar of sizes 1 to 3, or a size), entries of both signs, where the rule's
//! guard holds and both sides are defined; and every derivative of the operator table
//! against finite differences of its function.

use super::{simplify_rules, Guard, GuardCondition};
use crate::dim::{Dim, Shape};
use crate::ir::{expr_data, DimNode, Env, Kind, Math, MathGraph, ShapeAnalysis};
use crate::numeric::{eval, Instance, Matrix};
use crate::ops::Func;
use egg::{Condition, ENodeOrVar, Id, Language, Pattern, RecExpr, Subst, Symbol, Var};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// What a pattern variable stands for in one instance.
#[derive(Clone)]
enum Binding {
    Value(Symbol),
    Size(u64),
}

/// The variables that stand for sizes: arguments of `ones`, `eye`, `commute`, … .
fn size_vars(patterns: &[&Pattern<Math>]) -> Vec<Var> {
    let mut out = Vec::new();
    for p in patterns {
        let ast = p.ast.as_ref();
        for node in ast {
            let ENodeOrVar::ENode(n) = node else { continue };
            let sizes: &[Id] = match n {
                Math::Ones(c) | Math::Zeros(c) | Math::Commute(c) => c,
                Math::Eye(c) | Math::DimValue(c) => std::slice::from_ref(c),
                Math::BlockSum(c) | Math::BlockAdd(c) => &c[1..],
                _ => &[],
            };
            for c in sizes {
                if let ENodeOrVar::Var(v) = &ast[usize::from(*c)] {
                    out.push(*v);
                }
            }
        }
    }
    out
}

/// The pattern with its variables replaced by their bindings.
fn instantiate(p: &Pattern<Math>, bindings: &HashMap<Var, Binding>) -> RecExpr<Math> {
    let mut out = RecExpr::default();
    for node in p.ast.as_ref() {
        let n = match node {
            ENodeOrVar::ENode(n) => n.clone(),
            ENodeOrVar::Var(v) => match &bindings[v] {
                Binding::Value(s) => Math::Symbol(*s),
                Binding::Size(k) => Math::Dim(DimNode(Dim::size(*k))),
            },
        };
        out.add(n);
    }
    out
}

/// Whether every node is typed as the IR requires (beyond what the analysis records).
fn well_typed(expr: &RecExpr<Math>, env: &Env) -> bool {
    let data = expr_data(env, expr);
    let shape = |id: &Id| data[usize::from(*id)].shape().cloned();
    let scalar = |id: &Id| shape(id).is_some_and(|s| s.is_scalar());
    let square = |id: &Id| shape(id).is_some_and(|s| s.is_square());
    data.iter().all(|d| d.kind != Kind::Invalid)
        && expr.iter().all(|node| match node {
            Math::Add([a, b]) | Math::Had([a, b]) | Math::HDiv([a, b]) => shape(a) == shape(b),
            Math::Scale([s, _]) => scalar(s),
            Math::Pow([a, k]) => scalar(a) && scalar(k),
            Math::EPow([_, k]) => scalar(k),
            Math::Fn(_, args) => args[1..].iter().all(scalar),
            Math::Diag(a) => shape(a).is_some_and(|s| s.is_column()),
            Math::DiagVec(a) | Math::Trace(a) | Math::Det(a) | Math::LogDet(a) | Math::Inv(a) => square(a),
            _ => true,
        })
}

fn entries(rng: &mut ChaCha8Rng, rows: usize, cols: usize, integers: bool) -> Matrix {
    Matrix::from_fn(rows, cols, |_, _| {
        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let magnitude = if integers {
            rng.random_range(1..=3) as f64
        } else {
            rng.random_range(0.25..1.25)
        };
        sign * magnitude
    })
}

/// One random instance of a rule, if its shapes fit, its guard holds and both sides are
/// defined: the two sides' values.
fn try_instance(
    lhs: &Pattern<Math>,
    rhs: &Pattern<Math>,
    guard: Guard,
    sizes: &[Var],
    rng: &mut ChaCha8Rng,
) -> Option<(Matrix, Matrix)> {
    let mut env = Env::default();
    let mut bindings = HashMap::new();
    let mut inst = Instance::default();
    let integers = rng.random_bool(0.3);
    let symmetric: Vec<&str> = match guard {
        Guard::Symmetric(v) => vec![v],
        _ => vec![],
    };
    let onehot: Vec<&str> = match guard {
        Guard::OneHot(v) => vec![v],
        _ => vec![],
    };
    for v in lhs.vars() {
        if sizes.contains(&v) {
            bindings.insert(v, Binding::Size(rng.random_range(1..=3)));
            continue;
        }
        let name = Symbol::from(format!("v{}", &v.to_string()[1..]));
        let scalar = rng.random_bool(0.3);
        let (r, c) = if scalar {
            (1, 1)
        } else {
            (rng.random_range(1..=3), rng.random_range(1..=3))
        };
        let mut value = entries(rng, r, c, integers);
        if symmetric.contains(&v.to_string().as_str()) {
            if r != c {
                return None;
            }
            value = (&value + value.transpose()) * 0.5;
            env.symmetric.insert(name);
        }
        if onehot.contains(&v.to_string().as_str()) {
            value = Matrix::zeros(r, c);
            for i in 0..r {
                value[(i, rng.random_range(0..c))] = 1.0;
            }
            env.onehot.insert(name);
        }
        let shape = Shape::new(Dim::size(r as u64), Dim::size(c as u64));
        env.shapes.insert(name, shape);
        inst.values.insert(name, value);
        bindings.insert(v, Binding::Value(name));
    }
    let (left, right) = (instantiate(lhs, &bindings), instantiate(rhs, &bindings));
    if !well_typed(&left, &env) || !well_typed(&right, &env) {
        return None;
    }
    if !matches!(guard, Guard::Always) {
        let mut egraph = MathGraph::new(ShapeAnalysis { env: env.clone() });
        let mut subst = Subst::default();
        for (v, b) in &bindings {
            let leaf = match b {
                Binding::Value(s) => Math::Symbol(*s),
                Binding::Size(k) => Math::Dim(DimNode(Dim::size(*k))),
            };
            subst.insert(*v, egraph.add(leaf));
        }
        let root = egraph.add_expr(&left);
        crate::simplify::rebuild(&mut egraph);
        if !GuardCondition::new(guard).check(&mut egraph, root, &subst) {
            return None;
        }
    }
    let (l, r) = (eval(&left, &inst).ok()?, eval(&right, &inst).ok()?);
    Some((l, r))
}

#[test]
fn every_rewrite_rule_holds_numerically() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut failures = Vec::new();
    let mut untested = Vec::new();
    for rule in simplify_rules() {
        let ways: &[(&str, &str)] = &[(rule.lhs, rule.rhs), (rule.rhs, rule.lhs)];
        for (way, (from, to)) in ways.iter().enumerate().take(if rule.both_ways { 2 } else { 1 }) {
            let lhs: Pattern<Math> = from.parse().expect("rule parses");
            let rhs: Pattern<Math> = to.parse().expect("rule parses");
            let name = if way == 0 {
                rule.name.to_string()
            } else {
                format!("{}-rev", rule.name)
            };
            if rhs.vars().iter().any(|v| !lhs.vars().contains(v)) {
                // A right side with variables of its own holds for every value of them.
                continue;
            }
            let sizes = size_vars(&[&lhs, &rhs]);
            let mut checked = 0;
            for _ in 0..20_000 {
                if checked == 8 {
                    break;
                }
                let Some((l, r)) = try_instance(&lhs, &rhs, rule.guard, &sizes, &mut rng) else {
                    continue;
                };
                checked += 1;
                let scale = l.amax().max(r.amax()).max(1.0);
                if l.shape() != r.shape() || (&l - &r).amax() > 1e-9 * scale {
                    failures.push(format!("{name}: {from} ≠ {to}: {l} vs {r}"));
                    break;
                }
            }
            if checked == 0 {
                untested.push(name);
            }
        }
    }
    assert!(failures.is_empty(), "unsound rewrites:\n{}", failures.join("\n"));
    assert!(untested.is_empty(), "rules no random instance could test: {untested:?}");
}

#[test]
fn every_derivative_in_the_operator_table_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for &f in Func::ALL {
        let spec = f.spec();
        let derivative: Pattern<Math> = spec.derivative.parse().expect("derivative parses");
        let x = Symbol::from("x");
        let mut expr = RecExpr::default();
        let a = expr.add(Math::Symbol(x));
        let mut args = vec![a];
        let parameter = spec.parameter.map(|p| {
            let id = expr.add(Math::Num(crate::ir::Const(p)));
            args.push(id);
            (id, p)
        });
        let e = expr.add(Math::function(f, &args));
        // Instantiate f′ over ?a = x, ?e = f(x), ?b = the parameter.
        let mut ids: Vec<Id> = Vec::new();
        for node in derivative.ast.as_ref() {
            let id = match node {
                ENodeOrVar::Var(v) if v.to_string() == "?a" => a,
                ENodeOrVar::Var(v) if v.to_string() == "?e" => e,
                ENodeOrVar::Var(v) if v.to_string() == "?b" => parameter.expect("?b is the parameter").0,
                ENodeOrVar::Var(v) => panic!("{}: unknown variable {v}", spec.name),
                ENodeOrVar::ENode(n) => expr.add(n.clone().map_children(|c| ids[usize::from(c)])),
            };
            ids.push(id);
        }
        let p = parameter.map_or(0.0, |(_, p)| p);
        let mut checked = 0;
        while checked < 20 {
            let v = rng.random_range(-2.0..2.0);
            if spec.domain.admits(v) != crate::ops::Admits::Yes {
                continue;
            }
            let mut inst = Instance::default();
            inst.values.insert(x, Matrix::from_element(1, 1, v));
            let Ok(d) = eval(&expr, &inst) else { continue };
            let h = 1e-5;
            let fd = (f.apply(v + h, p) - f.apply(v - h, p)) / (2.0 * h);
            assert!(
                (d[(0, 0)] - fd).abs() < 1e-6 * fd.abs().max(1.0),
                "{}′({v}) is {} by the table, {fd} by finite differences",
                spec.name,
                d[(0, 0)]
            );
            checked += 1;
        }
    }
}
