//! The notes a derivation makes: what `explain`, `grad`, `jacobian`, `hessian` and `hvp` know,
//! arranged as a [`Document`] with a sentence of prose per section, each sentence built from
//! the derivation's facts (its broadcasts, steps, Jacobian and check).

use super::document::{math, partial, prose, rule_note, tex, text, Block, Document, Inline, Line, Section};
use super::latex::{dim as dim_tex, name as name_tex, shape as shape_tex};
use crate::explain::{Axis, Explanation};
use crate::fullform::{FullForm, FullKind};
use crate::{Check, Derivation};

/// The annotation of a checked line.
fn verdict(check: &Check) -> String {
    match check {
        Check::Passed { .. } => "\\checkmark".into(),
        Check::Failed { .. } => "\\text{FAILED}".into(),
        _ => "\\text{unchecked}".into(),
    }
}

fn agreed(ok: bool) -> String {
    if ok {
        "\\checkmark".into()
    } else {
        "\\text{does not agree}".into()
    }
}

fn with(mut runs: Vec<Inline>, more: impl IntoIterator<Item = Inline>) -> Vec<Inline> {
    runs.extend(more);
    runs
}

/// The forward expression: the intermediates it names, the target with broadcasting explicit,
/// the upstream gradient.
fn forward(d: &Derivation) -> Section {
    let target = name_tex(d.target_label());
    let mut lines = definition_lines(d);
    lines.push(Line {
        lhs: target.clone(),
        rhs: d.target_latex(),
        note: Some(shape_tex(&d.target_shape)),
    });
    let kind = if d.target_shape.is_scalar() {
        "a scalar".to_string()
    } else if d.target_shape.is_column() {
        format!("a vector of length ${}$", dim_tex(&d.target_shape.rows))
    } else {
        format!("a ${}$ matrix", shape_tex(&d.target_shape))
    };
    let mut runs = vec![
        text("The target "),
        math(&target),
        text(format!(
            " is {kind}, written with its broadcasts and reductions as matrix products"
        )),
    ];
    if d.broadcasts.is_empty() {
        runs.push(text("; nothing is broadcast."));
    } else {
        runs.push(text(": "));
        for (k, b) in d.broadcasts.iter().enumerate() {
            if k > 0 {
                runs.push(text("; "));
            }
            runs.extend(prose(b, &names(d)));
        }
        runs.push(text("."));
    }
    let mut blocks = vec![Block::Prose(fix_math(runs)), Block::Equations(lines)];
    if let Some((g, s)) = &d.upstream {
        blocks.push(Block::Prose(vec![
            math(format!("{} = {}", name_tex(g.as_str()), partial("L", &target))),
            text(", of shape "),
            math(shape_tex(s)),
            text(format!(
                ", is the upstream gradient: what backpropagation brings to {} from the loss ",
                if d.target_name.is_some() {
                    "this layer"
                } else {
                    "the target"
                }
            )),
            math("L"),
            text("."),
        ]));
    }
    Section {
        title: "The forward expression".into(),
        blocks,
    }
}

/// One line per named intermediate: `name = body`.
fn definition_lines(d: &Derivation) -> Vec<Line> {
    d.definitions
        .iter()
        .map(|(n, e)| Line {
            lhs: name_tex(n),
            rhs: tex(e),
            note: None,
        })
        .collect()
}

/// `Text("a $B$ b")` written by `format!` with `$…$` split into text and math runs.
fn fix_math(runs: Vec<Inline>) -> Vec<Inline> {
    let mut out = Vec::new();
    for r in runs {
        match r {
            Inline::Text(t) if t.contains('$') => {
                for (k, part) in t.split('$').enumerate() {
                    if part.is_empty() {
                        continue;
                    }
                    out.push(if k % 2 == 1 { math(part) } else { text(part) });
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `M_{ij}`, bracketed unless `M` is a name.
fn entry(m: &str, atom: bool, idx: &str) -> String {
    if atom {
        format!("{m}_{{{idx}}}")
    } else {
        format!("\\left({m}\\right)_{{{idx}}}")
    }
}

fn intuitive(x: &Explanation) -> Section {
    let d = &x.result;
    let loss = name_tex(d.loss_label());
    let wrt = name_tex(&d.wrt);
    let target = name_tex(d.target_label());
    let blocks = match &x.intuitive {
        Some(i @ crate::explain::Intuitive { reduced: Some(r), .. }) => {
            let u = tex(&i.upstream_expr);
            let atom = matches!(i.upstream_expr.as_ref().last(), Some(crate::ir::Math::Symbol(_)));
            let sum = tex(&r.sum);
            let n = name_tex(i.count.as_str());
            let x_ij = format!("{}_{{ij}}", wrt_entry(&wrt));
            let sum_atom = matches!(r.sum.as_ref().last(), Some(crate::ir::Math::Symbol(_)));
            let sum_entry = match i.axis {
                Axis::Rows => entry(&sum, sum_atom, "j"),
                Axis::Columns => entry(&sum, sum_atom, "i"),
                Axis::Entries => sum.clone(),
            };
            let (said, summed, own) = match i.axis {
                Axis::Rows => (
                    format!("Entry $j$ of ${sum}$ is the sum of column $j$ of ${wrt}$ over its ${n}$ rows. Each entry ${x_ij}$ is in exactly one of these sums, with coefficient 1, so it gets that sum's upstream gradient: every row of the gradient is the same, a broadcast over the ${n}$ rows, the reverse of the sum."),
                    format!("\\sum_{{i=1}}^{{{n}}} {x_ij}"),
                    entry(&u, atom, "j"),
                ),
                Axis::Columns => (
                    format!("Entry $i$ of ${sum}$ is the sum of row $i$ of ${wrt}$ over its ${n}$ columns. Each entry ${x_ij}$ is in exactly one of these sums, with coefficient 1, so it gets that sum's upstream gradient: every column of the gradient is the same, a broadcast over the ${n}$ columns, the reverse of the sum."),
                    format!("\\sum_{{j=1}}^{{{n}}} {x_ij}"),
                    entry(&u, atom, "i"),
                ),
                Axis::Entries => (
                    format!("${sum}$ is the sum of every entry of ${wrt}$. Each entry ${x_ij}$ is in that sum once, with coefficient 1, so every entry of the gradient is the sum's upstream gradient."),
                    format!("\\sum_{{i,j}} {x_ij}"),
                    u.clone(),
                ),
            };
            vec![
                Block::Prose(fix_math(vec![text(said)])),
                Block::Equations(vec![
                    Line {
                        lhs: sum_entry,
                        rhs: summed,
                        note: None,
                    },
                    Line {
                        lhs: partial(&loss, &x_ij),
                        rhs: own,
                        note: None,
                    },
                    Line {
                        lhs: partial(&loss, &wrt),
                        rhs: d.formula_latex(),
                        note: Some(agreed(i.agrees)),
                    },
                ]),
            ]
        }
        Some(i) => {
            let u = tex(&i.upstream_expr);
            let atom = matches!(i.upstream_expr.as_ref().last(), Some(crate::ir::Math::Symbol(_)));
            let n = i.count.as_str();
            let n_tex = if n == "all" { String::new() } else { name_tex(n) };
            let (said, per_entry, sum) = match i.axis {
                Axis::Rows => (
                    format!(
                        "Each of the ${n_tex}$ rows of ${target}$, one per example, gets the same ${wrt}^\\top$ added, so example $i$ contributes row $i$ of ${u}$ to the gradient of ${wrt}$. The examples share ${wrt}$, so its gradient is the sum over the batch axis of the per-example gradients:"
                    ),
                    format!("{}_{{j}}", wrt_entry(&wrt)),
                    format!("\\sum_{{i=1}}^{{{n_tex}}} {}", entry(&u, atom, "ij")),
                ),
                Axis::Columns => (
                    format!(
                        "Each of the ${n_tex}$ columns of ${target}$ gets the same ${wrt}$ added, so column $j$ contributes column $j$ of ${u}$. The columns share ${wrt}$, so its gradient is the sum over the columns:"
                    ),
                    format!("{}_{{i}}", wrt_entry(&wrt)),
                    format!("\\sum_{{j=1}}^{{{n_tex}}} {}", entry(&u, atom, "ij")),
                ),
                Axis::Entries => (
                    format!(
                        "Every entry of ${target}$ gets the same ${wrt}$ added, so entry $(i, j)$ contributes entry $(i, j)$ of ${u}$, and the gradient of ${wrt}$ is the sum over all entries:"
                    ),
                    wrt.clone(),
                    format!("\\sum_{{i,j}} {}", entry(&u, atom, "ij")),
                ),
            };
            vec![
                Block::Prose(fix_math(vec![text(said)])),
                Block::Equations(vec![
                    Line {
                        lhs: partial(&loss, &per_entry),
                        rhs: sum,
                        note: None,
                    },
                    Line {
                        lhs: partial(&loss, &wrt),
                        rhs: d.formula_latex(),
                        note: Some(agreed(i.agrees)),
                    },
                ]),
            ]
        }
        None => {
            let what = if d.target_shape.is_scalar() {
                format!("${target}$ is a scalar")
            } else {
                format!("${wrt}$ is not broadcast in ${target}$")
            };
            let mut blocks = vec![Block::Prose(fix_math(vec![text(format!(
                "Here {what}, so there is no sum over examples to read off: entry by entry, each partial derivative of ${loss}$ collects the paths from that entry of ${wrt}$ to ${loss}$, which the chain rule below follows all at once."
            ))]))];
            if let Some(index) = x.full.as_ref().and_then(|f| f.index_latex.clone()) {
                blocks.push(Block::Equations(vec![split_equation(&index)]));
            }
            blocks
        }
    };
    Section {
        title: "The intuitive derivation".into(),
        blocks,
    }
}

/// The variable's name ready for an index subscript (`W_{1}` braced).
fn wrt_entry(wrt: &str) -> String {
    if wrt.contains('_') {
        format!("{{{wrt}}}")
    } else {
        wrt.to_string()
    }
}

/// `lhs = rhs` as an aligned line.
fn split_equation(eq: &str) -> Line {
    match eq.split_once(" = ") {
        Some((l, r)) => Line {
            lhs: l.to_string(),
            rhs: r.to_string(),
            note: None,
        },
        None => Line {
            lhs: String::new(),
            rhs: eq.to_string(),
            note: None,
        },
    }
}

fn compact(x: &Explanation) -> Section {
    let d = &x.result;
    let loss = name_tex(d.loss_label());
    let wrt = name_tex(&d.wrt);
    let target = name_tex(d.target_label());
    let mut lines: Vec<Line> = x
        .steps
        .iter()
        .map(|s| {
            let node = super::render(&s.shown_node, &super::latex::Latex);
            let node = if node.prec >= super::Prec::Atom {
                node.text
            } else {
                format!("\\left({}\\right)", node.text)
            };
            let rule = if s.rules.is_empty() {
                "\\text{the upstream gradient}".to_string()
            } else {
                s.rules.iter().map(|r| rule_note(r)).collect::<Vec<_>>().join(";\\ ")
            };
            Line {
                lhs: partial(&loss, &node),
                rhs: tex(&s.shown_upstream),
                note: Some(format!("{rule} \\quad {}", verdict(&s.check))),
            }
        })
        .collect();
    let simplified = d.formula_latex();
    if x.steps.last().is_some_and(|l| tex(&l.shown_upstream) != simplified) {
        lines.push(Line {
            lhs: partial(&loss, &wrt),
            rhs: simplified,
            note: Some("\\text{simplified}".into()),
        });
    }
    let checked = x.steps.iter().filter(|s| s.check.passed()).count();
    let count = x.steps.len();
    let rules: std::collections::BTreeSet<&str> = x.steps.iter().flat_map(|s| s.rules.iter().copied()).collect();
    let said = format!(
        "Backpropagation goes from ${target}$ back to ${wrt}$ one node of the expression at a time: each of the {count} lines is the gradient of ${loss}$ with respect to one node, obtained from the line before by the rule on its right ({} distinct rules); {}.",
        rules.len(),
        if checked == count {
            "each line was checked numerically by cutting the expression at that node".to_string()
        } else {
            format!("{checked} of the {count} lines passed their numeric check")
        }
    );
    Section {
        title: "The compact chain rule".into(),
        blocks: vec![Block::Prose(fix_math(vec![text(said)])), Block::Equations(lines)],
    }
}

/// The full form: the matrix over vec, the tensor's shape, the index form, the structural
/// nonzeros, and its contraction with the upstream (for a Jacobian); `compact` is the
/// compact result the contraction gives back.
fn full(f: &FullForm, shown: Option<&egg::RecExpr<crate::ir::Math>>, compact: Option<&str>) -> Vec<Block> {
    let target = name_tex(&f.target_label);
    let wrt = name_tex(&f.wrt);
    let shape: Vec<String> = f.tensor_shape().iter().map(dim_tex).collect();
    let size = |s: &crate::dim::Shape| dim_tex(&s.rows.times(&s.cols));
    let (of, rows, cols) = match f.kind {
        FullKind::Jacobian => (target.clone(), size(&f.target_shape), size(&f.wrt_shape)),
        FullKind::Hessian => match &f.gradient_of {
            Some((x, _)) => (
                format!("\\nabla_{{{}}} {target}", name_tex(x)),
                size(f.row_shape()),
                size(&f.wrt_shape),
            ),
            None => (format!("\\nabla {target}"), size(&f.wrt_shape), size(&f.wrt_shape)),
        },
    };
    let mut lines = vec![Line {
        lhs: format!("J = \\frac{{\\partial \\operatorname{{vec}}({of})}}{{\\partial \\operatorname{{vec}}({wrt})}}"),
        rhs: shown.map_or_else(|| f.matrix_latex(), tex),
        note: Some(format!("{rows} \\times {cols} \\quad {}", verdict(&f.check))),
    }];
    if let Some(index) = &f.index_latex {
        lines.push(split_equation(index));
    }
    let what = match f.kind {
        FullKind::Jacobian => format!("The Jacobian of ${target}$ with respect to ${wrt}$"),
        FullKind::Hessian => match &f.gradient_of {
            Some((x, _)) => format!(
                "The mixed second derivative of ${target}$, the Jacobian in ${wrt}$ of its gradient in ${}$,",
                name_tex(x)
            ),
            None => format!("The Hessian of ${target}$ in ${wrt}$, the Jacobian of its gradient,"),
        },
    };
    let mut said = format!(
        "{what} is a tensor of shape $({})$; listing entries row by row (numpy's ravel) makes it the ${rows} \\times {cols}$ matrix below",
        shape.join(", ")
    );
    if f.index_latex.is_some() {
        said.push_str(", whose index form says which entries depend on which");
    }
    if let Some(nz) = &f.nonzeros {
        let total = f.tensor_shape().iter().fold(crate::dim::Dim::one(), |a, b| a.times(b));
        said.push_str(&format!(
            ". Only ${}$ of its ${}$ entries are structurally nonzero",
            dim_tex(nz),
            dim_tex(&total)
        ));
    }
    if let Some((_, ok)) = &f.contraction {
        said.push_str(&format!(
            ". Contracting it with the upstream gradient gives back the compact result{}",
            if *ok { "" } else { ", but NOT numerically" }
        ));
    }
    said.push('.');
    if let (Some((_, ok)), Some(compact)) = (&f.contraction, compact) {
        lines.push(Line {
            lhs: partial("L", &wrt),
            rhs: format!("\\operatorname{{reshape}}\\left(J^\\top \\operatorname{{vec}}(G)\\right) = {compact}"),
            note: Some(agreed(*ok)),
        });
    }
    vec![Block::Prose(fix_math(vec![text(said)])), Block::Equations(lines)]
}

/// The script's names, which prose sets as math.
fn names(d: &Derivation) -> Vec<&str> {
    let mut out: Vec<&str> = d.variables.iter().map(String::as_str).collect();
    out.extend(d.dims.iter().map(String::as_str));
    out.extend(d.definitions.iter().map(|(n, _)| n.as_str()));
    out.extend(d.target_name.as_deref());
    out
}

fn check_section(runs: Vec<Inline>, check_line: &str, names: &[&str]) -> Section {
    let mut said = runs;
    said.push(text(" "));
    said.extend(prose(&capitalised(check_line), names));
    said.push(text("."));
    Section {
        title: "The check".into(),
        blocks: vec![Block::Prose(said)],
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn title(d: &Derivation, what: &str) -> Vec<Inline> {
    vec![
        text(format!("{what} ")),
        math(partial(&name_tex(d.loss_label()), &name_tex(&d.wrt))),
        text(" for "),
        math(format!("{} = {}", name_tex(d.target_label()), d.target_latex())),
    ]
}

/// `explain`'s notes: the forward expression, the three derivations, the check.
pub fn explanation(x: &Explanation) -> Document {
    let d = &x.result;
    let mut sections = vec![forward(d), intuitive(x), compact(x)];
    let blocks = match &x.full {
        Some(f) => full(f, x.full_shown.as_ref(), Some(&d.formula_latex())),
        None => vec![Block::Prose(fix_math(vec![text(format!(
            "${}$ is a scalar, so its Jacobian with respect to ${}$ is the gradient itself, laid out as one row: the compact result above is already the full form.",
            name_tex(d.target_label()),
            name_tex(&d.wrt)
        ))]))],
    };
    sections.push(Section {
        title: "The full form".into(),
        blocks,
    });
    let parts = 1 + usize::from(x.intuitive.is_some()) + usize::from(x.full.is_some());
    let verdict = if x.all_checked() {
        format!(
            "The three derivations agree: the result, each of the {} steps and the other {} reading{} were compared with finite differences.",
            x.steps.len(),
            parts - 1,
            if parts == 2 { "" } else { "s" }
        )
    } else {
        "NOT every part passed its numeric check; the failing lines are marked.".to_string()
    };
    sections.push(check_section(vec![text(verdict)], &d.check_text(), &names(d)));
    Document {
        title: title(d, "Three ways to"),
        sections,
    }
}

/// `jacobian` and `hessian`'s notes: the forward expression, the full form, the check.
pub fn full_form(f: &FullForm) -> Document {
    let target = name_tex(&f.target_label);
    let forward = Section {
        title: "The forward expression".into(),
        blocks: vec![Block::Equations(vec![Line {
            lhs: target.clone(),
            rhs: tex(&f.target),
            note: Some(shape_tex(&f.target_shape)),
        }])],
    };
    let (what, title_math) = match f.kind {
        FullKind::Jacobian => ("The Jacobian", partial(&target, &name_tex(&f.wrt))),
        FullKind::Hessian => match &f.gradient_of {
            Some((x, _)) => (
                "The mixed second derivative",
                format!(
                    "\\frac{{\\partial^2 {target}}}{{\\partial {} \\partial {}}}",
                    name_tex(x),
                    name_tex(&f.wrt)
                ),
            ),
            None => ("The Hessian", format!("\\nabla^2_{{{}}} {target}", name_tex(&f.wrt))),
        },
    };
    let contraction_compact = f.contraction.as_ref().map(|(c, _)| super::document::math_of_text(c));
    Document {
        title: vec![text(format!("{what} ")), math(title_math)],
        sections: vec![
            forward,
            Section {
                title: "The full form".into(),
                blocks: full(f, None, contraction_compact.as_deref()),
            },
            check_section(
                vec![text("Every entry was compared with finite differences.")],
                &f.check_text(),
                &f.dims.iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        ],
    }
}

/// `hvp`'s notes: the forward expression and the direction, H·v with the named pieces it is
/// written with, the check along v.
pub fn hvp(h: &crate::hvp::Hvp) -> Document {
    let d = &h.derivation;
    let target = name_tex(&h.target_label);
    let (x, v) = (name_tex(&h.wrt), name_tex(&h.dir));
    let forward = Section {
        title: "The forward expression".into(),
        blocks: vec![
            Block::Equations(vec![Line {
                lhs: target.clone(),
                rhs: h.target_latex.clone(),
                note: Some(shape_tex(&crate::dim::Shape::scalar())),
            }]),
            Block::Prose(fix_math(vec![text(format!(
                "The direction ${v}$ has the shape of ${x}$, ${}$.",
                shape_tex(h.shape())
            ))])),
        ],
    };
    let mut lines = definition_lines(d);
    lines.push(Line {
        lhs: format!("\\nabla^2_{{{x}}} {target}\\, {v}"),
        rhs: h.formula_latex(),
        note: Some(format!("{} \\quad {}", shape_tex(h.shape()), verdict(&h.check))),
    });
    let mut said = format!(
        "The Hessian ${{\\nabla^2_{{{x}}} {target}}}$ times ${v}$ is the gradient in ${x}$ of the scalar $\\langle \\nabla_{{{x}}} {target}, {v} \\rangle$: reverse mode over the gradient's formula gives it at the cost of a gradient, and the Hessian itself is never formed"
    );
    if h.derived_zero.is_some() {
        said.push_str(". It is identically zero (the derived form was 0 at every entry on every checked instance)");
    }
    said.push(':');
    let mut names: Vec<&str> = names(d);
    names.push(&h.dir);
    Document {
        title: vec![
            text("The Hessian-vector product "),
            math(format!("\\nabla^2_{{{x}}} {target}\\, {v}")),
        ],
        sections: vec![
            forward,
            Section {
                title: "The Hessian-vector product".into(),
                blocks: vec![Block::Prose(fix_math(vec![text(said)])), Block::Equations(lines)],
            },
            check_section(
                vec![
                    text("The product was compared with the derivative of the checked gradient along "),
                    math(&v),
                    text("."),
                ],
                &h.check_text(),
                &names,
            ),
        ],
    }
}

/// `grad`'s notes: the forward expression, each gradient, the check.
pub fn gradients(ds: &[Derivation]) -> Document {
    let Some(first) = ds.first() else {
        return Document {
            title: vec![],
            sections: vec![],
        };
    };
    let loss = name_tex(first.loss_label());
    let lines: Vec<Line> = ds
        .iter()
        .map(|d| {
            let mut note = shape_tex(&d.formula_shape());
            if d.layout == crate::Layout::Numerator {
                note.push_str(",\\ \\text{numerator layout}");
            }
            Line {
                lhs: partial(&loss, &name_tex(&d.wrt)),
                rhs: d.formula_latex(),
                note: Some(format!("{note} \\quad {}", verdict(&d.check))),
            }
        })
        .collect();
    let wrts: Vec<String> = ds.iter().map(|d| format!("${}$", name_tex(&d.wrt))).collect();
    let shapes = if ds.len() == 1 {
        "with the shape of the variable"
    } else {
        "each with the shape of its variable"
    };
    let said = format!(
        "The gradient of ${loss}$ with respect to {}, {shapes}{}:",
        wrts.join(", "),
        if first.upstream.is_some() {
            ", backpropagated from the upstream gradient"
        } else {
            ""
        }
    );
    let checks: Vec<String> = ds
        .iter()
        .map(|d| {
            if ds.len() == 1 {
                d.check_text()
            } else {
                format!("∂{}/∂{}: {}", d.loss_label(), d.wrt, d.check_text())
            }
        })
        .collect();
    Document {
        title: match ds {
            [d] => title(d, "The gradient"),
            _ => with(vec![text("Gradients for ")], [math(name_tex(first.target_label()))]),
        },
        sections: vec![
            forward(first),
            Section {
                title: "The gradient".into(),
                blocks: vec![Block::Prose(fix_math(vec![text(said)])), Block::Equations(lines)],
            },
            check_section(
                vec![text("The formula was compared with finite differences.")],
                &checks.join("; "),
                &names(first),
            ),
        ],
    }
}
