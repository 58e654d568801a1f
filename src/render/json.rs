//! The derivation as one JSON object.

use crate::numeric::Check;
use crate::Derivation;
use serde_json::{json, Value};

/// The numeric check's verdict as JSON (`{"status": "passed", "instances": 3, ...}`).
pub fn check(check: &Check) -> Value {
    match check {
        Check::Passed {
            instances,
            max_rel_err,
            scale,
        } => {
            json!({"status": "passed", "instances": instances, "max_rel_err": max_rel_err, "scale": scale})
        }
        Check::Failed {
            instances,
            max_rel_err,
            scale,
        } => {
            json!({"status": "failed", "instances": instances, "max_rel_err": max_rel_err, "scale": scale})
        }
        Check::NoDomain { tried, empty } => json!({"status": "no_domain", "tried": tried, "empty": empty}),
        Check::TooLarge { entries } => json!({"status": "too_large", "entries": entries}),
        Check::Skipped => json!({"status": "unchecked"}),
    }
}

pub fn derivation(d: &Derivation) -> Value {
    let check = check(&d.check);
    json!({
        "target": {
            "name": d.target_name,
            "explicit": d.target_text(),
            "shape": d.target_shape.to_string(),
        },
        "wrt": d.wrt,
        "wrt_shape": d.wrt_shape.to_string(),
        "derived_zero": d.derived_zero,
        "zero_reason": d.zero_reason,
        "layout": d.layout.name(),
        "upstream": d.upstream.as_ref().map(|(g, s)| json!({"name": g.as_str(), "shape": s.to_string()})),
        "formula": d.formula_text(),
        "shape": d.formula_shape().to_string(),
        "numpy": d.numpy(),
        "broadcasts": d.broadcasts,
        "inferred": d.inferred.iter().map(|(n, s)| json!({"name": n, "shape": s})).collect::<Vec<_>>(),
        "check": check,
        "simplification": {
            "iterations": d.simplify.iterations,
            "egraph_nodes": d.simplify.nodes,
            "limit_hit": d.simplify.limit_hit,
        },
    })
}
