//! Running a forward function symbolically: each statement is evaluated on symbolic
//! arrays (see [`super::arrays`]), in order, so a reassigned name has its latest value
//! as in numpy. Every named intermediate becomes a definition (`xhat`, a second `x` as
//! `x_2`), so results can be written with the script's own names.

use super::arrays::{broadcast_shapes, ir_shape, np_shape_text, Arr, Arrays, Elementwise, NpShape};
use super::syntax::{BinOp, CmpOp, Expr, ExprKind, FunctionDef, Index, Param, Stmt};
use crate::diagnostic::{closest, Error, Span};
use crate::dim::{Dim, Shape};
use crate::ir::Math;
use egg::{Id, Symbol};
use std::collections::{BTreeSet, HashMap};

/// A symbolic Python value.
#[derive(Debug, Clone)]
pub enum Value {
    Arr(Arr),
    Number {
        value: f64,
        integer: bool,
    },
    /// A size: from `x.shape`, `len(x)`, or a dimension's name.
    Dim(Dim),
    Tuple(Vec<Value>),
    Str(String),
    Bool(bool),
    NoneV,
    /// `np`, `np.linalg`, `np.random`.
    Module(&'static str),
    /// `np.exp`, `x.sum` before the call: the function and the object it was read from.
    Function(String, Option<Box<Value>>),
    /// A user-defined function, called by inlining.
    Helper(String),
    /// Integer class labels `y: "N labels of C"`; `onehot` is the N x C matrix `onehot(y)`.
    Labels {
        name: String,
        n: Dim,
        c: Dim,
        onehot: Symbol,
    },
    /// `x[mask]` for a comparison mask: the selected entries, kept at their places (`values`
    /// has `x`'s shape), usable only entry by entry and stored back through the same mask
    /// (`z[neg] = np.exp(x[neg])`, CS231n's stable sigmoid).
    Masked {
        values: Arr,
        mask: Arr,
    },
    /// `y[:, None]` of labels: the index column `np.take_along_axis` takes.
    LabelsColumn(Box<Value>),
    /// `np.arange(N)` or `range(N)`: the row indices that pair with labels.
    Arange(Dim),
    /// The value of a statement matdiff cannot read (`acc = np.mean(np.argmax(s, 1) == y)`):
    /// harmless while unused, its error when used. `tuple` when it was written as a tuple or
    /// dictionary (a cache, which may end the returned values).
    Poison {
        error: Box<Error>,
        tuple: bool,
    },
    /// A value kept but not computed with (a dictionary cache).
    Opaque(&'static str),
}

/// What a parameter is.
#[derive(Debug, Clone)]
pub enum ParamKind {
    /// An annotated array or scalar: a variable to differentiate.
    Variable(NpShape),
    /// Integer class labels.
    Labels { n: Dim, c: Dim, onehot: Symbol },
    /// A numeric default (`eps=1e-5`): a constant, as its default's source text.
    Constant {
        value: f64,
        text: String,
        /// Assigned in the body (`eps = 1e-12`) rather than a parameter's default: the
        /// backward function assigns it too instead of taking it as a parameter.
        local: bool,
    },
    /// Anything else (`bn_param=None`): passed through, an error if used.
    Other { default: Option<String> },
}

#[derive(Debug, Clone)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
}

/// The forward function read as a target.
pub struct Reading {
    pub params: Vec<ParamInfo>,
    /// The returned outputs, before a trailing cache: each value and the name it was returned as.
    pub outputs: Vec<(Arr, Option<String>, Span)>,
    pub definitions: Vec<(String, Id, Shape)>,
    pub dims: BTreeSet<String>,
    pub arrays: Arrays,
    pub return_span: Span,
}

pub struct Interpreter<'a> {
    pub functions: &'a HashMap<String, &'a FunctionDef>,
    pub constants: &'a HashMap<String, Value>,
    pub arrays: Arrays,
    pub dims: BTreeSet<String>,
    /// Names taken by parameters, dimensions and definitions, so new names cannot clash.
    taken: BTreeSet<String>,
    definitions: Vec<(String, Id, Shape)>,
    defined_ids: HashMap<Id, String>,
    /// How many times each name has been assigned so far, and in all, at the top level.
    versions: HashMap<String, usize>,
    assignments: HashMap<String, usize>,
    parameters: BTreeSet<String>,
    /// Nesting of helper calls: their locals are not the target's definitions.
    depth: usize,
    /// Each label gather `(A ⊙ Y)·1` built so far, by its node: A and Y.
    gathers: HashMap<Id, (Arr, Symbol)>,
    /// The constants kept by name (`eps=1e-5`) and their defaults, read as numbers where
    /// only a number will do (an exponent: `(1 - pt) ** gamma`).
    named_constants: HashMap<Id, f64>,
    /// The nodes of comparison masks (`x > 0`), which may index an array (`out[out < 0] = 0`).
    masks: BTreeSet<Id>,
    /// Functions defined inside the function being read (or a helper), inlined as helpers are.
    local_functions: HashMap<String, FunctionDef>,
    /// What the module's imports bind, visible in every function.
    imports: Scope,
    /// Names bound to the same array (`probs = scores`), with the call depth they were bound at:
    /// numpy changes both when one is changed in place.
    aliases: Vec<(usize, String, String)>,
    /// Each inlined helper's parameters and the arrays they were called with, innermost last.
    helper_params: Vec<HashMap<String, Id>>,
    /// The arrays a helper changed in place (its arguments), for the caller to follow.
    mutated: Vec<Id>,
    /// Annotations tried for parameters written without one (see `super::annotations`);
    /// `None` for one the body never reads, passed through.
    assumed: HashMap<String, Option<String>>,
    /// The source, for the text of a constant the body names (`eps = 1e-12`).
    source: String,
    /// Constants the body assigns once to a name (`eps = 1e-12`): kept by name, as a real
    /// default is, and given to the backward function as a keyword with that default.
    local_constants: Vec<ParamInfo>,
}

const MAX_CALL_DEPTH: usize = 32;

type Scope = HashMap<String, Value>;

fn err_unsupported(what: &str, span: Span) -> Error {
    Error::unsupported(format!("{what} are not supported in the numpy dialect"), span)
        .with_note("matdiff derives straight-line numpy code: assignments, numpy calls, and `return`")
}

impl<'a> Interpreter<'a> {
    pub fn new(functions: &'a HashMap<String, &'a FunctionDef>, constants: &'a HashMap<String, Value>) -> Self {
        Interpreter {
            functions,
            constants,
            arrays: Arrays::default(),
            dims: BTreeSet::new(),
            taken: BTreeSet::new(),
            definitions: Vec::new(),
            defined_ids: HashMap::new(),
            versions: HashMap::new(),
            assignments: HashMap::new(),
            parameters: BTreeSet::new(),
            depth: 0,
            gathers: HashMap::new(),
            named_constants: HashMap::new(),
            masks: BTreeSet::new(),
            local_functions: HashMap::new(),
            imports: Scope::new(),
            aliases: Vec::new(),
            helper_params: Vec::new(),
            mutated: Vec::new(),
            assumed: HashMap::new(),
            source: String::new(),
            local_constants: Vec::new(),
        }
    }

    /// Reads parameters written without an annotation as if annotated with these texts.
    pub fn assuming(mut self, assumed: HashMap<String, Option<String>>) -> Self {
        self.assumed = assumed;
        self
    }

    /// The sizes the annotated parameters' shapes are made of, in the order written.
    pub fn declared_sizes(&mut self, f: &FunctionDef) -> Vec<Dim> {
        let mut sizes: Vec<Dim> = Vec::new();
        for p in &f.params {
            let Some(Expr {
                kind: ExprKind::Str(text),
                span,
            }) = &p.annotation
            else {
                continue;
            };
            let axes = match self.annotation(text, *span, &p.name) {
                Ok(ParamKind::Variable(shape)) => shape,
                Ok(ParamKind::Labels { n, c, .. }) => vec![n, c],
                _ => continue,
            };
            for d in axes {
                if !sizes.contains(&d) {
                    sizes.push(d);
                }
            }
        }
        sizes
    }

    /// Reads the forward function: its parameters' shapes, its body, its outputs.
    pub fn read(mut self, f: &FunctionDef, source: &str) -> Result<Reading, Error> {
        self.source = source.to_string();
        let mut scope = Scope::new();
        // The module's imports (`from numpy.linalg import norm`) name what the functions call.
        for st in super::syntax::parse(source)? {
            if let Stmt::Import(bindings) = st {
                let mut imported = std::mem::take(&mut self.imports);
                self.import(&bindings, &mut imported);
                self.imports = imported;
            }
        }
        let mut params = Vec::new();
        for p in &f.params {
            self.taken.insert(p.name.clone());
            self.parameters.insert(p.name.clone());
        }
        for st in &f.body {
            match st {
                Stmt::Assign { targets, .. } => targets.iter().for_each(|t| count_assigned(t, &mut self.assignments)),
                Stmt::AugAssign { target, .. } => count_assigned(target, &mut self.assignments),
                _ => {}
            }
        }
        for p in &f.params {
            let kind = self.parameter(p, source)?;
            let value = match &kind {
                ParamKind::Variable(shape) => {
                    let sym = Symbol::from(p.name.as_str());
                    Value::Arr(Arr {
                        id: self.arrays.add(Math::Symbol(sym)),
                        shape: shape.clone(),
                        name: Some(p.name.clone()),
                    })
                }
                ParamKind::Labels { n, c, onehot } => Value::Labels {
                    name: p.name.clone(),
                    n: n.clone(),
                    c: c.clone(),
                    onehot: *onehot,
                },
                ParamKind::Constant { text, value, .. } if kept_by_name(text) => {
                    let id = self.arrays.add(Math::Symbol(Symbol::from(p.name.as_str())));
                    self.named_constants.insert(id, *value);
                    Value::Arr(Arr {
                        id,
                        shape: vec![],
                        name: Some(p.name.clone()),
                    })
                }
                ParamKind::Constant { value, .. } => Value::Number {
                    value: *value,
                    integer: false,
                },
                ParamKind::Other { .. } => Value::NoneV,
            };
            scope.insert(p.name.clone(), value);
            params.push(ParamInfo {
                name: p.name.clone(),
                kind,
            });
        }
        let (returned, return_span) = self.body(&f.body, &mut scope)?.ok_or_else(|| {
            Error::syntax(format!("`{}` has no `return`", f.name), f.name_span)
                .with_note("the forward function returns its output, e.g. `return out, cache`")
        })?;
        let returned_expr = f.body.iter().find_map(|st| match st {
            Stmt::Return { value, .. } => value.as_ref(),
            _ => None,
        });
        let outputs = self.outputs(returned, returned_expr, return_span)?;
        params.append(&mut self.local_constants);
        Ok(Reading {
            params,
            outputs,
            definitions: self.definitions,
            dims: self.dims,
            arrays: self.arrays,
            return_span,
        })
    }

    /// `eps = 1e-12` in the forward function itself, assigned once: the constant kept by its
    /// name, as a parameter's real default is (the formulas read `p + eps·1`, not a folded
    /// `1000000000000·…`), and the backward function takes it as a keyword with that value.
    fn kept_constant(&mut self, targets: &[Expr], value: &Expr, v: Value) -> Value {
        let (
            Value::Number { value: number, .. },
            [Expr {
                kind: ExprKind::Name(n),
                ..
            }],
        ) = (&v, targets)
        else {
            return v;
        };
        let text = self.source[value.span.start..value.span.end].to_string();
        let once = self.assignments.get(n).copied() == Some(1);
        if self.depth > 0
            || !once
            || self.parameters.contains(n)
            || constant_of(value).is_none()
            || !kept_by_name(&text)
        {
            return v;
        }
        let id = self.arrays.add(Math::Symbol(Symbol::from(n.as_str())));
        self.named_constants.insert(id, *number);
        self.taken.insert(n.clone());
        self.local_constants.push(ParamInfo {
            name: n.clone(),
            kind: ParamKind::Constant {
                value: *number,
                text,
                local: true,
            },
        });
        Value::Arr(Arr {
            id,
            shape: vec![],
            name: Some(n.clone()),
        })
    }

    fn parameter(&mut self, p: &Param, source: &str) -> Result<ParamKind, Error> {
        if let (None, None, Some(assumed)) = (&p.annotation, &p.default, self.assumed.get(&p.name)) {
            return match assumed.clone() {
                Some(text) => self.annotation(&text, p.span, &p.name),
                None => Ok(ParamKind::Other { default: None }),
            };
        }
        if let Some(a) = &p.annotation {
            return match &a.kind {
                ExprKind::Str(text) => self.annotation(text, a.span, &p.name),
                ExprKind::Name(n) if n == "float" => Ok(ParamKind::Variable(vec![])),
                // `mode: str = "train"`, `bn_param: dict`, `num_classes: int = 10`: not arrays;
                // read as an unannotated parameter (a numeric default is a constant).
                ExprKind::Name(n) if matches!(n.as_str(), "int" | "str" | "bool" | "dict" | "list" | "tuple") => {
                    self.unannotated(p, source)
                }
                _ => Err(Error::syntax(
                    format!("the annotation of `{}` is not a shape", p.name),
                    a.span,
                )
                .with_note("write the shape as a string: `x: \"N x D\"`, `b: \"M\"`, `reg: \"scalar\"`, `y: \"N labels of C\"`")),
            };
        }
        self.unannotated(p, source)
    }

    /// A parameter without a shape: a constant (its numeric default), else passed through.
    fn unannotated(&mut self, p: &Param, source: &str) -> Result<ParamKind, Error> {
        match &p.default {
            Some(d) => match constant_of(d) {
                Some(value) => Ok(ParamKind::Constant {
                    value,
                    text: source[d.span.start..d.span.end].to_string(),
                    local: false,
                }),
                None => Ok(ParamKind::Other {
                    default: Some(source[d.span.start..d.span.end].to_string()),
                }),
            },
            None => Err(Error::name(format!("parameter `{}` has no shape annotation", p.name), p.span)
                .with_note(format!(
                    "annotate it with its shape in matdiff's shape syntax, e.g. `{}: \"N x D\"`, `\"D\"`, `\"scalar\"` or `\"N labels of C\"`",
                    p.name
                ))),
        }
    }

    /// A shape annotation: `"N x D"`, `"D"`, `"D x 4*H"`, `"scalar"`, `"N labels of C"`.
    fn annotation(&mut self, text: &str, span: Span, name: &str) -> Result<ParamKind, Error> {
        let inner = Span::new(span.start + 1, span.end.saturating_sub(1).max(span.start + 1));
        let bad = |why: &str| {
            Error::syntax(format!("`{text}` is not a shape: {why}"), inner).with_note(
                "shapes are `scalar`, `D` (1-D), `N x D` (2-D), with sizes such as `4*H`; labels are `N labels of C`",
            )
        };
        let trimmed = text.trim();
        if trimmed == "scalar" || trimmed == "float" || trimmed == "()" {
            return Ok(ParamKind::Variable(vec![]));
        }
        if let Some((n, c)) = trimmed.split_once(" labels of ") {
            let n = self
                .dim_text(n)
                .ok_or_else(|| bad("the number of labels is not a size"))?;
            let c = self
                .dim_text(c)
                .ok_or_else(|| bad("the number of classes is not a size"))?;
            let onehot = self.fresh_name(&[name.to_uppercase(), format!("onehot_{name}")]);
            return Ok(ParamKind::Labels {
                n,
                c,
                onehot: Symbol::from(onehot.as_str()),
            });
        }
        let cleaned = trimmed.trim_start_matches('(').trim_end_matches(')');
        let parts: Vec<&str> = cleaned
            .split([',', '×'])
            .flat_map(|p| p.split(" x "))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() || parts.len() > 2 {
            return Err(bad("matdiff's arrays have one or two axes"));
        }
        let mut shape = Vec::new();
        for part in parts {
            shape.push(
                self.dim_text(part)
                    .ok_or_else(|| bad(&format!("`{part}` is not a size")))?,
            );
        }
        Ok(ParamKind::Variable(shape))
    }

    /// A size in an annotation: a product of positive integers and names (`4*H`).
    fn dim_text(&mut self, text: &str) -> Option<Dim> {
        let mut dim = Dim::one();
        for factor in text.split(['*', '·']).map(str::trim) {
            let d = match factor.parse::<u64>() {
                Ok(n) if n > 0 => Dim::size(n),
                Ok(_) => return None,
                Err(_) if is_identifier(factor) => {
                    self.dims.insert(factor.to_string());
                    self.taken.insert(factor.to_string());
                    Dim::named(factor)
                }
                Err(_) => return None,
            };
            dim = dim.times(&d);
        }
        Some(dim)
    }

    /// The first candidate not yet taken (then with a number), marked taken.
    fn fresh_name(&mut self, candidates: &[String]) -> String {
        let name = candidates
            .iter()
            .find(|c| !self.taken.contains(*c))
            .cloned()
            .unwrap_or_else(|| {
                (2..)
                    .map(|k| format!("{}_{k}", candidates[0]))
                    .find(|c| !self.taken.contains(c))
                    .expect("some numbered name is free")
            });
        self.taken.insert(name.clone());
        name
    }

    /// Runs statements; the value of the first `return` and its span.
    fn body(&mut self, body: &[Stmt], scope: &mut Scope) -> Result<Option<(Value, Span)>, Error> {
        for st in body {
            match st {
                Stmt::Nothing => {}
                Stmt::Import(bindings) => self.import(bindings, scope),
                Stmt::Def(f) => {
                    // A function defined in the body: a helper from here on, in this scope only
                    // (its key, with its place, cannot meet another function's).
                    let key = format!("{}@{}", f.name, f.span.start);
                    self.local_functions.insert(key.clone(), f.clone());
                    scope.insert(f.name.clone(), Value::Helper(key));
                }
                Stmt::Unsupported { what, span } => return Err(err_unsupported(what, *span)),
                Stmt::Expr(e) => match &e.kind {
                    ExprKind::Str(_) | ExprKind::Ellipsis => {}
                    // `print(...)` shows values and changes none.
                    ExprKind::Call { func, .. } if matches!(&func.kind, ExprKind::Name(n) if n == "print") => {}
                    _ => {
                        return Err(Error::unsupported(
                            "an expression statement has no effect on the derivative",
                            e.span,
                        )
                        .with_note("assign its value to a name, or remove it"))
                    }
                },
                Stmt::Assign { targets, value, .. } => {
                    let v = match self.eval(value, scope) {
                        Ok(v) => v,
                        Err(error) if targets.iter().all(only_names) => {
                            // Unreadable, but maybe never used (an accuracy, a prediction):
                            // its names hold the error, raised where they are used.
                            let tuple = matches!(value.kind, ExprKind::Tuple(_) | ExprKind::Opaque(_));
                            let poison = Value::Poison {
                                error: Box::new(error),
                                tuple,
                            };
                            targets.iter().for_each(|t| poison_names(t, &poison, scope));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if let (ExprKind::Name(source), Value::Arr(a)) = (&value.kind, &v) {
                        if !a.shape.is_empty() {
                            for t in targets {
                                if let ExprKind::Name(n) = &t.kind {
                                    self.aliases.push((self.depth, n.clone(), source.clone()));
                                }
                            }
                        }
                    }
                    let v = self.kept_constant(targets, value, v);
                    for t in targets {
                        self.assign(t, v.clone(), scope)?;
                    }
                }
                Stmt::AugAssign {
                    target,
                    op,
                    value,
                    span,
                } => {
                    let changed = match &target.kind {
                        ExprKind::Name(n) => Some(n.clone()),
                        ExprKind::Subscript(obj, _) => match &obj.kind {
                            ExprKind::Name(n) => Some(n.clone()),
                            _ => None,
                        },
                        _ => None,
                    };
                    if let Some(n) = changed {
                        self.in_place(&n, *span, scope);
                    }
                    if let ExprKind::Subscript(obj, items) = &target.kind {
                        if let Some(mask) = self.mask_index(items, scope)? {
                            // `out[out < 0] *= alpha`: the masked entries updated, the others kept.
                            let base = self.eval(obj, scope)?;
                            let rhs = self.eval(value, scope)?;
                            let updated = self.binary(*op, base.clone(), rhs, *span)?;
                            let new = self.masked_assign(base, &mask, updated, target.span)?;
                            self.assign(obj, new, scope)?;
                            continue;
                        }
                    }
                    let current = match &target.kind {
                        ExprKind::Name(_) | ExprKind::Subscript(..) => self.eval(target, scope)?,
                        _ => {
                            return Err(Error::unsupported(
                                "this augmented assignment target is not supported",
                                target.span,
                            ))
                        }
                    };
                    let rhs = self.eval(value, scope)?;
                    if let ExprKind::Subscript(obj, items) = &target.kind {
                        let base = self.eval(obj, scope)?;
                        let updated = self.binary(*op, current, rhs, *span)?;
                        let new = self.scatter(&base, items, updated, scope, target.span, true)?;
                        self.assign(obj, new, scope)?;
                    } else {
                        let updated = self.binary(*op, current, rhs, *span)?;
                        self.assign(target, updated, scope)?;
                    }
                }
                Stmt::Return { value, span } => {
                    let v = match value.as_ref().map(|e| (e, &e.kind)) {
                        // Item by item: an unreadable cache after the outputs ends them unread.
                        Some((_, ExprKind::Tuple(items))) => Value::Tuple(
                            items
                                .iter()
                                .map(|i| match (&i.kind, self.eval(i, scope)) {
                                    (_, Ok(v)) => Ok(v),
                                    (ExprKind::Name(n), Err(_))
                                        if matches!(scope.get(n), Some(Value::Poison { .. })) =>
                                    {
                                        Ok(scope[n].clone())
                                    }
                                    (_, Err(e)) => Err(e),
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Some((e, _)) => self.eval(e, scope)?,
                        None => Value::NoneV,
                    };
                    return Ok(Some((v, *span)));
                }
            }
        }
        Ok(None)
    }

    fn assign(&mut self, target: &Expr, value: Value, scope: &mut Scope) -> Result<(), Error> {
        match &target.kind {
            ExprKind::Name(n) => {
                if self.depth == 0 {
                    *self.versions.entry(n.clone()).or_insert(0) += 1;
                }
                let value = match value {
                    Value::Arr(a) => Value::Arr(self.define(n, a)),
                    Value::Dim(d) => {
                        // `N, D = x.shape`: the name is the dimension's size.
                        Value::Dim(d)
                    }
                    other => other,
                };
                scope.insert(n.clone(), value);
                Ok(())
            }
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                let values = match value {
                    Value::Tuple(vs) => vs,
                    _ => {
                        return Err(Error::unsupported(
                            "only a tuple (or a shape) can be unpacked into several names",
                            target.span,
                        ))
                    }
                };
                if values.len() != items.len() {
                    return Err(Error::shape(
                        format!("cannot unpack {} values into {} names", values.len(), items.len()),
                        target.span,
                    ));
                }
                for (t, v) in items.iter().zip(values) {
                    self.assign(t, v, scope)?;
                }
                Ok(())
            }
            ExprKind::Subscript(obj, items) => {
                let base = self.eval(obj, scope)?;
                if let Value::Opaque(_) = base {
                    // `cache['x'] = x`: a store into a cache.
                    return Ok(());
                }
                if let ExprKind::Name(n) = &obj.kind {
                    self.in_place(n, target.span, scope);
                }
                let new = self.scatter(&base, items, value, scope, target.span, false)?;
                self.assign(obj, new, scope)
            }
            _ => Err(Error::unsupported(
                "only names, tuples of names and label-indexed entries can be assigned to",
                target.span,
            )),
        }
    }

    /// Before `name` is changed in place (`probs /= s`, `m[idx] = 0`): numpy changes every
    /// other name for the same array too. Those names are bound to an error, raised if they
    /// are used; a helper's argument changed in place is recorded for its caller.
    fn in_place(&mut self, name: &str, span: Span, scope: &mut Scope) {
        let Some(Value::Arr(old)) = scope.get(name) else {
            return;
        };
        if old.shape.is_empty() {
            // A numpy scalar is immutable: `loss += x` makes a new one.
            return;
        }
        let old = old.id;
        let others: Vec<String> = self
            .aliases
            .iter()
            .filter(|(d, _, _)| *d == self.depth)
            .filter_map(|(_, a, b)| match (a == name, b == name) {
                (true, _) => Some(b.clone()),
                (_, true) => Some(a.clone()),
                _ => None,
            })
            .filter(|other| matches!(scope.get(other), Some(Value::Arr(a)) if a.id == old))
            .collect();
        for other in others {
            let error = Error::unsupported(
                format!(
                    "this changes `{name}` in place, and `{other}` is the same array: numpy changes `{other}` too, which matdiff does not follow"
                ),
                span,
            )
            .with_note(format!(
                "make a new array instead: `{name} = {other}.copy()` before, or `{name} = {name} - ...` here"
            ));
            scope.insert(
                other,
                Value::Poison {
                    error: Box::new(error),
                    tuple: false,
                },
            );
        }
        if let Some(params) = self.helper_params.last() {
            if params.get(name) == Some(&old) {
                self.mutated.push(old);
            }
        }
    }

    /// Binds what an import names: numpy and its functions (`np`, `xp`, `from numpy import exp`),
    /// `math` and its functions. Other modules stay unbound, so using them is an unknown name.
    fn import(&mut self, bindings: &[(String, Vec<String>)], scope: &mut Scope) {
        for (name, path) in bindings {
            let value = match path.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["numpy"] => Value::Module("np"),
                ["numpy", "linalg"] => Value::Module("np.linalg"),
                ["math"] => Value::Module("math"),
                ["numpy", rest @ ..] => Value::Function(format!("np.{}", rest.join(".")), None),
                ["math", f] => Value::Function(format!("math.{f}"), None),
                _ => continue,
            };
            scope.insert(name.clone(), value);
        }
    }

    /// Names an array: a definition of the target, under a fresh version of the name when
    /// the name already has a value (`x = x - mu` makes `x_2`).
    fn define(&mut self, name: &str, a: Arr) -> Arr {
        let trivial = matches!(
            self.arrays.builder.expr()[a.id],
            Math::Symbol(_) | Math::Num(_) | Math::DimValue(_)
        );
        if self.depth > 0 || trivial {
            return Arr {
                name: a.name.or(Some(name.to_string())),
                ..a
            };
        }
        if let Some(existing) = self.defined_ids.get(&a.id) {
            return Arr {
                name: Some(existing.clone()),
                ..a
            };
        }
        // Versions of a reassigned name read as numpy means them: the last one keeps the
        // name, the earlier ones are numbered (`loss_1`, then `loss`); a reassigned
        // parameter's versions are numbered after it (`x`, then `x_2`).
        let k = self.versions.get(name).copied().unwrap_or(1);
        let total = self.assignments.get(name).copied().unwrap_or(1);
        let is_parameter = self.parameters.contains(name);
        let label = if !is_parameter && k >= total && !self.taken.contains(name) {
            self.taken.insert(name.to_string());
            name.to_string()
        } else {
            let first = if is_parameter { k + 1 } else { k };
            let candidates: Vec<String> = (first..first + 50)
                .map(|j| format!("{name}_{j}"))
                .filter(|c| !self.assignments.contains_key(c))
                .collect();
            self.fresh_name(&candidates)
        };
        self.definitions.push((label.clone(), a.id, ir_shape(&a.shape)));
        self.defined_ids.insert(a.id, label.clone());
        Arr { name: Some(label), ..a }
    }

    /// The returned values before a trailing cache: an element written `cache`, or one
    /// whose value is a tuple (or `None`), ends the outputs.
    fn outputs(
        &mut self,
        returned: Value,
        written: Option<&Expr>,
        span: Span,
    ) -> Result<Vec<(Arr, Option<String>, Span)>, Error> {
        let (values, exprs): (Vec<Value>, Vec<Option<&Expr>>) = match (returned, written.map(|e| &e.kind)) {
            (Value::Tuple(vs), Some(ExprKind::Tuple(es))) if vs.len() == es.len() => {
                let exprs = es.iter().map(Some).collect();
                (vs, exprs)
            }
            (Value::Tuple(vs), _) => {
                let n = vs.len();
                (vs, vec![None; n])
            }
            (v, _) => (vec![v], vec![written]),
        };
        let mut out = Vec::new();
        for (v, e) in values.into_iter().zip(exprs) {
            let written_name = e.and_then(|e| match &e.kind {
                ExprKind::Name(n) => Some(n.clone()),
                _ => None,
            });
            let at = e.map_or(span, |e| e.span);
            if written_name.as_deref() == Some("cache") {
                break;
            }
            match v {
                Value::Tuple(_) | Value::NoneV | Value::Opaque(_) | Value::Poison { tuple: true, .. } => break,
                Value::Poison { error, .. } => return Err(*error),
                Value::Arr(_) | Value::Number { .. } | Value::Dim(_) => {
                    let a = self.to_arr(v, at)?;
                    let name = written_name.or_else(|| a.name.clone());
                    out.push((a, name, at));
                }
                _ => {
                    return Err(Error::unsupported(
                        "the forward function must return arrays (then, optionally, a cache)",
                        at,
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err(Error::unsupported("the forward function returns no array", span)
                .with_note("return the output first: `return out, cache`"));
        }
        Ok(out)
    }

    fn lookup(&self, name: &str, span: Span, scope: &Scope) -> Result<Value, Error> {
        if let Some(v) = scope.get(name) {
            if let Value::Poison { error, .. } = v {
                return Err(error
                    .as_ref()
                    .clone()
                    .with_note(format!("`{name}` holds this value, and is used later")));
            }
            return Ok(v.clone());
        }
        if let Some(v) = self.constants.get(name).or_else(|| self.imports.get(name)) {
            return Ok(v.clone());
        }
        if self.functions.contains_key(name) {
            return Ok(Value::Helper(name.to_string()));
        }
        match name {
            "np" | "numpy" => return Ok(Value::Module("np")),
            "math" => return Ok(Value::Module("math")),
            "len" | "range" | "float" | "int" | "abs" | "max" | "min" | "sum" | "pow" => {
                return Ok(Value::Function(format!("builtins.{name}"), None))
            }
            _ => {}
        }
        if self.dims.contains(name) {
            return Ok(Value::Dim(Dim::named(name)));
        }
        let mut err = Error::name(format!("unknown name `{name}`"), span);
        if let Some(near) = closest(name, scope.keys().map(String::as_str)) {
            err = err.with_note(format!("did you mean `{near}`?"));
        }
        Err(err)
    }

    pub fn to_arr(&mut self, v: Value, span: Span) -> Result<Arr, Error> {
        match v {
            Value::Arr(a) => Ok(a),
            Value::Number { value, .. } => Ok(self.arrays.constant(value)),
            Value::Bool(b) => Ok(self.arrays.constant(if b { 1.0 } else { 0.0 })),
            Value::Dim(d) => Ok(self.arrays.dim_value(&d)),
            Value::Labels { name, .. } => Err(Error::unsupported(
                format!("the labels `{name}` can only index rows (`x[np.arange(N), {name}]`) or `np.eye(C)[{name}]`"),
                span,
            )),
            Value::NoneV => Err(Error::unsupported(
                "`None` (or a parameter without a shape) is used as an array",
                span,
            )),
            Value::Masked { .. } => Err(Error::unsupported(
                "boolean mask indexing is read only entry by entry and stored back through its mask (`z[m] = np.exp(x[m])`): otherwise its length depends on the data",
                span,
            )
            .with_note("multiply by the mask instead: `np.sum(x[x > 0])` is `np.sum(x * (x > 0))`")),
            Value::Tuple(_) => Err(Error::unsupported("a tuple is used as an array", span)
                .with_note("`np.array` of several arrays is not supported; use `np.concatenate`")),
            _ => Err(Error::unsupported("this value is used as an array", span)),
        }
    }

    fn eval(&mut self, e: &Expr, scope: &mut Scope) -> Result<Value, Error> {
        match &e.kind {
            ExprKind::Name(n) => self.lookup(n, e.span, scope),
            ExprKind::Number { value, integer } => Ok(Value::Number {
                value: *value,
                integer: *integer,
            }),
            ExprKind::Str(s) => Ok(Value::Str(s.clone())),
            ExprKind::NoneLit => Ok(Value::NoneV),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Ellipsis => Err(err_unsupported("`...` indices", e.span)),
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                let vs = items
                    .iter()
                    .map(|i| self.eval(i, scope))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::Tuple(vs))
            }
            ExprKind::Unsupported(what) => Err(err_unsupported(what, e.span)),
            ExprKind::Opaque(what) => Ok(Value::Opaque(what)),
            ExprKind::Neg(a) => {
                let v = self.eval(a, scope)?;
                if let Value::Masked { .. } = v {
                    let minus_one = Value::Number {
                        value: -1.0,
                        integer: true,
                    };
                    return self.binary(BinOp::Mul, minus_one, v, e.span);
                }
                match v {
                    Value::Number { value, integer } => Ok(Value::Number { value: -value, integer }),
                    v => {
                        let a = self.to_arr(v, e.span)?;
                        Ok(Value::Arr(Arr {
                            id: self.arrays.negate(a.id),
                            shape: a.shape,
                            name: None,
                        }))
                    }
                }
            }
            ExprKind::Pos(a) => self.eval(a, scope),
            ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.eval(a, scope)?, self.eval(b, scope)?);
                self.binary(*op, va, vb, e.span)
            }
            ExprKind::Compare(op, a, b) => {
                let (va, vb) = (self.eval(a, scope)?, self.eval(b, scope)?);
                self.compare(*op, va, vb, e.span)
            }
            ExprKind::Attr(obj, name, span) => {
                let v = self.eval(obj, scope)?;
                self.refuse_reading_other(&v, obj, &format!("`.{name}`"), e.span)?;
                self.attribute(v, name, *span, e.span)
            }
            ExprKind::Subscript(obj, items) => {
                let v = self.eval(obj, scope)?;
                self.refuse_reading_other(&v, obj, "an entry", e.span)?;
                self.subscript(v, items, scope, e.span)
            }
            ExprKind::Call { func, args, kwargs } => {
                let f = self.eval(func, scope)?;
                let mut positional = Vec::new();
                for a in args {
                    positional.push((self.eval(a, scope)?, a.span));
                }
                let mut keywords = Vec::new();
                for (k, v, span) in kwargs {
                    keywords.push((k.clone(), self.eval(v, scope)?, *span));
                }
                let result = self.call(f, positional, keywords, func.span, e.span)?;
                for id in std::mem::take(&mut self.mutated) {
                    // A helper changed an argument in place: the caller's names for it changed too.
                    let names: Vec<String> = scope
                        .iter()
                        .filter(|(_, v)| matches!(v, Value::Arr(a) if a.id == id))
                        .map(|(n, _)| n.clone())
                        .collect();
                    for n in names {
                        let error = Error::unsupported(
                            format!("this call changes `{n}` in place (the function assigns into its argument), which matdiff does not follow"),
                            e.span,
                        )
                        .with_note("in the function, make a new array: `x = x.copy()` first, or `np.maximum(x, 0)`");
                        scope.insert(
                            n,
                            Value::Poison {
                                error: Box::new(error),
                                tuple: false,
                            },
                        );
                    }
                }
                Ok(result)
            }
        }
    }

    /// A result computed from a masked selection's entries, still that selection.
    fn masked(v: Value, mask: Arr) -> Result<Value, Error> {
        match v {
            Value::Arr(values) => Ok(Value::Masked { values, mask }),
            other => Ok(other),
        }
    }

    /// `bn_param.get("eps", 1e-5)`, `bn_param["mode"]`: a parameter that is not an array (a
    /// dictionary of settings) is passed through, and reading from it is refused by name.
    fn refuse_reading_other(&self, v: &Value, obj: &Expr, what: &str, span: Span) -> Result<(), Error> {
        match (v, &obj.kind) {
            (Value::NoneV, ExprKind::Name(n)) if self.parameters.contains(n) => Err(Error::unsupported(
                format!("reading {what} from the parameter `{n}` is not supported: it has no shape, so matdiff passes it through"),
                span,
            )
            .with_note(format!(
                "dictionaries of settings are not read; make each setting a parameter with a default (`eps=1e-5`) instead of `{n}`"
            ))),
            _ => Ok(()),
        }
    }

    fn binary(&mut self, op: BinOp, a: Value, b: Value, span: Span) -> Result<Value, Error> {
        // Masked selections combine entry by entry with scalars and with selections by the same mask.
        let scalar = |v: &Value| {
            matches!(v, Value::Number { .. } | Value::Dim(_)) || matches!(v, Value::Arr(x) if x.shape.is_empty())
        };
        match (&a, &b) {
            (Value::Masked { values: x, mask: m }, Value::Masked { values: y, mask: n })
                if m.id == n.id && op != BinOp::MatMul =>
            {
                let (x, y, mask) = (Value::Arr(x.clone()), Value::Arr(y.clone()), m.clone());
                return Self::masked(self.binary(op, x, y, span)?, mask);
            }
            (Value::Masked { values: x, mask }, other) if scalar(other) && op != BinOp::MatMul => {
                let (x, mask, other) = (Value::Arr(x.clone()), mask.clone(), other.clone());
                return Self::masked(self.binary(op, x, other, span)?, mask);
            }
            (other, Value::Masked { values: y, mask }) if scalar(other) && op != BinOp::MatMul => {
                let (y, mask, other) = (Value::Arr(y.clone()), mask.clone(), other.clone());
                return Self::masked(self.binary(op, other, y, span)?, mask);
            }
            _ => {}
        }
        // Sizes and plain numbers stay sizes and numbers (`4 * H`, `N - 1`, `0.5 * reg`).
        if let (Some(x), Some(y)) = (dim_of(&a), dim_of(&b)) {
            if op == BinOp::Mul {
                return Ok(Value::Dim(x.times(&y)));
            }
        }
        if let (Value::Number { value: x, integer: ix }, Value::Number { value: y, integer: iy }) = (&a, &b) {
            let integer = *ix && *iy && !matches!(op, BinOp::Div);
            let value = match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                BinOp::Pow => x.powf(*y),
                BinOp::FloorDiv => (x / y).floor(),
                BinOp::Mod => x.rem_euclid(*y),
                BinOp::MatMul => return Err(Error::shape("matmul of two numbers", span)),
            };
            return Ok(Value::Number { value, integer });
        }
        if op == BinOp::FloorDiv {
            // `x.shape[1] // 2` of `2*K` columns is `K`.
            if let (Some(x), Some(y)) = (dim_of(&a), dim_of(&b)) {
                if let Some(q) = dim_ratio(&x, &y) {
                    return Ok(Value::Dim(q));
                }
            }
        }
        if op == BinOp::Pow {
            let named = |arr: &Arr| self.named_constants.get(&arr.id).copied();
            let k = match b {
                Value::Number { value, .. } => value,
                Value::Arr(ref arr) if named(arr).is_some() => named(arr).expect("checked"),
                _ => {
                    return Err(Error::unsupported("an exponent must be a number", span)
                        .with_note("write e.g. `x ** 2`, `np.sqrt(x)`; for `c ** x` write `np.exp(x * np.log(c))`"))
                }
            };
            let a = self.to_arr(a, span)?;
            return Ok(Value::Arr(self.arrays.power(&a, k)));
        }
        let (a, b) = (self.to_arr(a, span)?, self.to_arr(b, span)?);
        let op = match op {
            BinOp::Add => Elementwise::Add,
            BinOp::Sub => Elementwise::Sub,
            BinOp::Mul => Elementwise::Mul,
            BinOp::Div => Elementwise::Div,
            BinOp::MatMul => return Ok(Value::Arr(self.arrays.matmul(&a, &b, span, "@")?)),
            BinOp::FloorDiv | BinOp::Mod => {
                return Err(Error::unsupported(
                    format!("`{}` on arrays is not differentiable", op.symbol()),
                    span,
                ))
            }
            BinOp::Pow => unreachable!("handled above"),
        };
        Ok(Value::Arr(self.arrays.elementwise(op, &a, &b, span)?))
    }

    /// A comparison is a mask, a constant of differentiation: `[a > b]` is `step(a − b)`.
    fn compare(&mut self, op: CmpOp, a: Value, b: Value, span: Span) -> Result<Value, Error> {
        if let (Value::LabelsColumn(l), Value::Arange(classes)) | (Value::Arange(classes), Value::LabelsColumn(l)) =
            (&a, &b)
        {
            // `y[:, None] == np.arange(C)`: the one-hot matrix of the labels (`!=`, its complement).
            if let (Value::Labels { n, c, onehot, .. }, CmpOp::Eq | CmpOp::Ne) = (l.as_ref(), op) {
                if c != classes {
                    return Err(Error::shape(
                        format!(
                            "the labels take values below {}, compared with np.arange({})",
                            c.render("*"),
                            classes.render("*")
                        ),
                        span,
                    ));
                }
                let y = Arr {
                    id: self.arrays.add(Math::Symbol(*onehot)),
                    shape: vec![n.clone(), c.clone()],
                    name: Some(onehot.to_string()),
                };
                if op == CmpOp::Eq {
                    return Ok(Value::Arr(y));
                }
                let one = self.arrays.constant(1.0);
                return Ok(Value::Arr(self.arrays.elementwise(Elementwise::Sub, &one, &y, span)?));
            }
        }
        let (a, b) = (self.to_arr(a, span)?, self.to_arr(b, span)?);
        let (hi, lo) = match op {
            CmpOp::Gt | CmpOp::Ge => (a, b),
            CmpOp::Lt | CmpOp::Le => (b, a),
            CmpOp::Eq | CmpOp::Ne => return Err(Error::unsupported(
                "`==` and `!=` between real arrays are masks of measure zero; matdiff has no derivative through them",
                span,
            )
            .with_note("compare labels with `np.eye(C)[y]`, or use `>`/`<`")),
        };
        let diff = self.arrays.elementwise(Elementwise::Sub, &hi, &lo, span)?;
        let mask = self.arrays.apply(&diff, "step");
        self.masks.insert(mask.id);
        Ok(Value::Arr(mask))
    }

    /// The mask when `items` is one comparison mask (`out[out < 0]`), else `None`.
    fn mask_index(&mut self, items: &[Index], scope: &mut Scope) -> Result<Option<Arr>, Error> {
        let [Index::Expr(e)] = items else {
            return Ok(None);
        };
        if !matches!(e.kind, ExprKind::Compare(..) | ExprKind::Name(_)) {
            return Ok(None);
        }
        Ok(match self.eval(e, scope)? {
            Value::Arr(m) if self.masks.contains(&m.id) => Some(m),
            _ => None,
        })
    }

    /// `m[mask] = v` for a scalar `v`: `m ⊙ (1 − mask) + mask ⊙ v` (`v` may also be an array
    /// of `m`'s shape, the update of `m[mask] op= w`).
    fn masked_assign(&mut self, base: Value, mask: &Arr, value: Value, span: Span) -> Result<Value, Error> {
        let value = match value {
            // `z[m] = np.exp(x[m])`: the selection's entries go back to their places.
            Value::Masked { values, mask: n } if n.id == mask.id => Value::Arr(values),
            v => v,
        };
        let m = self.to_arr(base, span)?;
        let v = self.to_arr(value, span)?;
        if broadcast_shapes(&mask.shape, &m.shape).as_deref() != Some(m.shape.as_slice()) {
            return Err(Error::shape(
                format!(
                    "boolean index did not match: a mask of shape {} indexes an array of shape {}",
                    np_shape_text(&mask.shape),
                    np_shape_text(&m.shape)
                ),
                span,
            ));
        }
        if !(v.shape.is_empty() || v.shape == m.shape) {
            return Err(Error::unsupported(
                "only a scalar can be assigned to the entries a mask selects",
                span,
            ));
        }
        let one = self.arrays.constant(1.0);
        self.stored_through(&m, mask, &one, &v, span)
    }

    /// `m` with `v` stored where the 0/1 `mask` is 1: `m ⊙ (one − mask) + mask ⊙ v`
    /// (`one` the 1 or the ones matrix the mask is taken from), and just `m ⊙ (one − mask)`
    /// when `v` is 0.
    fn stored_through(&mut self, m: &Arr, mask: &Arr, one: &Arr, v: &Arr, span: Span) -> Result<Value, Error> {
        let keep = self.arrays.elementwise(Elementwise::Sub, one, mask, span)?;
        let kept = self.arrays.elementwise(Elementwise::Mul, m, &keep, span)?;
        if matches!(self.arrays.number_at(v.id), Some(z) if z == 0.0) {
            return Ok(Value::Arr(kept));
        }
        let placed = self.arrays.elementwise(Elementwise::Mul, mask, v, span)?;
        Ok(Value::Arr(self.arrays.elementwise(
            Elementwise::Add,
            &kept,
            &placed,
            span,
        )?))
    }

    fn attribute(&mut self, v: Value, name: &str, name_span: Span, span: Span) -> Result<Value, Error> {
        match (&v, name) {
            (Value::Module("np"), "linalg") => Ok(Value::Module("np.linalg")),
            (Value::Module("np"), "random") => Ok(Value::Module("np.random")),
            (Value::Module("np" | "math"), "pi") => Ok(Value::Number {
                value: std::f64::consts::PI,
                integer: false,
            }),
            (Value::Module("np" | "math"), "e") => Ok(Value::Number {
                value: std::f64::consts::E,
                integer: false,
            }),
            (Value::Module("np"), "newaxis") => Ok(Value::NoneV),
            (Value::Module("np" | "math"), "inf") => Ok(Value::Number {
                value: f64::INFINITY,
                integer: false,
            }),
            // `np.finfo(float).eps`: float64's constants.
            (Value::Module("finfo"), f) => {
                let value = match f {
                    "eps" => f64::EPSILON,
                    "tiny" | "smallest_normal" => f64::MIN_POSITIVE,
                    "max" => f64::MAX,
                    "min" => f64::MIN,
                    "resolution" => 1e-15,
                    _ => {
                        return Err(Error::unsupported(
                            format!("`np.finfo(...).{f}` is not supported"),
                            name_span,
                        ))
                    }
                };
                Ok(Value::Number { value, integer: false })
            }
            (Value::Module(m), f) => Ok(Value::Function(format!("{m}.{f}"), None)),
            (Value::Arr(a), "T") => {
                let id = self.arrays.transpose(a.id, &a.shape);
                let mut shape = a.shape.clone();
                shape.reverse();
                Ok(Value::Arr(Arr { id, shape, name: None }))
            }
            (Value::Arr(a), "shape") => Ok(Value::Tuple(a.shape.iter().cloned().map(Value::Dim).collect())),
            (Value::Arr(a), "ndim") => Ok(Value::Number {
                value: a.shape.len() as f64,
                integer: true,
            }),
            (Value::Arr(a), "size") => Ok(Value::Dim(self.arrays.count(a, None))),
            (Value::Arr(_), method) => Ok(Value::Function(format!("method.{method}"), Some(Box::new(v.clone())))),
            (Value::Labels { n, .. }, "shape") => Ok(Value::Tuple(vec![Value::Dim(n.clone())])),
            (Value::Function(f, None), _) if f.starts_with("np.") => {
                Err(Error::unsupported(format!("`{f}.{name}` is not supported"), span)
                    .with_note("see README's numpy dialect section for the functions matdiff reads"))
            }
            _ => Err(Error::unsupported(
                format!("the attribute `.{name}` of this value is not supported"),
                name_span,
            )),
        }
    }

    fn subscript(&mut self, v: Value, items: &[Index], scope: &mut Scope, span: Span) -> Result<Value, Error> {
        match v {
            Value::Tuple(vs) => {
                if let [Index::Slice(lo, hi, None, _)] = items {
                    // `x.shape[1:]`: a slice of a tuple is a tuple.
                    let len = vs.len() as i64;
                    let mut bound = |e: &Option<Expr>, default: i64| -> Result<usize, Error> {
                        let k = match e {
                            None => default,
                            Some(e) => match self.eval(e, scope)? {
                                Value::Number { value, integer: true } => value as i64,
                                _ => return Err(Error::unsupported("a tuple's slice takes integer bounds", e.span)),
                            },
                        };
                        Ok((if k < 0 { k + len } else { k }).clamp(0, len) as usize)
                    };
                    let (lo, hi) = (bound(lo, 0)?, bound(hi, len)?);
                    return Ok(Value::Tuple(vs.get(lo..hi.max(lo)).unwrap_or_default().to_vec()));
                }
                let [Index::Expr(i)] = items else {
                    return Err(Error::unsupported("a tuple takes one integer index", span));
                };
                let k = self.eval(i, scope)?;
                let Value::Number { value, integer: true } = k else {
                    return Err(Error::unsupported("a tuple takes an integer index", i.span));
                };
                let index = if value < 0.0 { vs.len() as f64 + value } else { value };
                vs.get(index as usize)
                    .cloned()
                    .ok_or_else(|| Error::shape("tuple index out of range", i.span))
            }
            Value::Arr(a) => self.index_array(a, items, scope, span),
            Value::Arange(_) => {
                // `np.arange(C)[None, :]`: the class indices as a row, compared with labels.
                let row = match items {
                    [Index::Expr(e)] | [Index::Expr(e), Index::Slice(None, None, None, _)] => {
                        matches!(self.eval(e, scope)?, Value::NoneV)
                    }
                    _ => false,
                };
                if row {
                    return Ok(v);
                }
                Err(Error::unsupported(
                    "`np.arange` is read as row indices with labels (`x[np.arange(N), y]`) or compared with `y[:, None]`",
                    span,
                ))
            }
            Value::Labels { .. } => {
                // `y[:, None]`: the labels as an index column, for `np.take_along_axis`.
                if let [Index::Slice(None, None, None, _), Index::Expr(e)] = items {
                    if let Value::NoneV = self.eval(e, scope)? {
                        return Ok(Value::LabelsColumn(Box::new(v)));
                    }
                }
                Err(Error::unsupported(
                    "labels are read only as `x[np.arange(N), y]`, `np.eye(C)[y]`, `W[y]` and `y[:, None]`",
                    span,
                ))
            }
            Value::Function(f, None) if f == "np.eye" => Err(Error::unsupported("index `np.eye(C)` with labels", span)),
            _ => Err(Error::unsupported("this value cannot be indexed", span)),
        }
    }

    fn index_array(&mut self, a: Arr, items: &[Index], scope: &mut Scope, span: Span) -> Result<Value, Error> {
        // `[:, None]`, `[None, :]`, `[np.newaxis]`: a new axis of size 1.
        let is_new_axis = |this: &mut Self, i: &Index, scope: &mut Scope| -> Result<bool, Error> {
            Ok(match i {
                Index::Expr(e) => matches!(this.eval(e, scope)?, Value::NoneV),
                Index::Slice(..) => false,
            })
        };
        let full = |i: &Index| matches!(i, Index::Slice(None, None, None, _));
        if a.shape.len() == 1 && items.len() <= 2 {
            let new_axis: Vec<bool> = items
                .iter()
                .map(|i| is_new_axis(self, i, scope))
                .collect::<Result<_, _>>()?;
            match (items, new_axis.as_slice()) {
                ([i, j], [false, true]) if full(i) => {
                    let n = a.shape[0].clone();
                    return Ok(Value::Arr(Arr {
                        shape: vec![n, Dim::one()],
                        name: None,
                        ..a
                    }));
                }
                ([_], [true]) | ([_, _], [true, false]) if items.len() == 1 || full(&items[1]) => {
                    let n = a.shape[0].clone();
                    let id = self.arrays.add(Math::Transpose(a.id));
                    return Ok(Value::Arr(Arr {
                        id,
                        shape: vec![Dim::one(), n],
                        name: None,
                    }));
                }
                _ => {}
            }
        }
        if items.iter().all(full) {
            return Ok(Value::Arr(a));
        }
        if let Some(mask) = self.mask_index(items, scope)? {
            return Ok(Value::Masked { values: a, mask });
        }
        if a.shape.len() == 2 && items.len() == 2 {
            if let (Index::Expr(r), Index::Expr(c)) = (&items[0], &items[1]) {
                let (rv, cv) = (self.eval(r, scope)?, self.eval(c, scope)?);
                if let (Value::Arange(n), Value::Labels { onehot, n: ln, .. }) = (&rv, &cv) {
                    if n != ln || a.shape[0] != *n {
                        return Err(Error::shape(
                            format!(
                                "the row indices, the labels and the array's rows must agree: {} rows",
                                a.shape[0].render("*")
                            ),
                            span,
                        ));
                    }
                    labels_fit(&cv, &a.shape, span)?;
                    return Ok(Value::Arr(self.gather(&a, *onehot)));
                }
            }
        }
        if let [Index::Expr(e)] = items {
            if let Value::Labels { c, n, onehot, name } = self.eval(e, scope)? {
                if a.shape.len() != 2 || a.shape[0] != c {
                    return Err(Error::shape(
                        format!(
                            "the labels `{name}` take values below {}, but the array has {} rows",
                            c.render("*"),
                            a.shape.first().map_or("no".into(), |d| d.render("*"))
                        ),
                        span,
                    ));
                }
                let y = self.arrays.add(Math::Symbol(onehot));
                if matches!(self.arrays.builder.expr()[a.id], Math::Eye(_)) {
                    // `np.eye(C)[y]`: the one-hot matrix of the labels.
                    return Ok(Value::Arr(Arr {
                        id: y,
                        shape: vec![n, c],
                        name: Some(onehot.to_string()),
                    }));
                }
                // `W[y]` (an embedding lookup): row y_i of W for each i, onehot(y)·W.
                let cols = a.shape[1].clone();
                return Ok(Value::Arr(Arr {
                    id: self.arrays.add(Math::Mul([y, a.id])),
                    shape: vec![n, cols],
                    name: None,
                }));
            }
        }
        self.slice(a, items, scope, span)
    }

    /// x[np.arange(N), y] = (X ⊙ Y)·1_C: each row's entry at its label.
    fn gather(&mut self, a: &Arr, onehot: Symbol) -> Arr {
        let y = self.arrays.add(Math::Symbol(onehot));
        let picked = Arr {
            id: self.arrays.add(Math::Had([a.id, y])),
            shape: a.shape.clone(),
            name: None,
        };
        let gathered = self.arrays.sum(&picked, Some(1), false);
        self.gathers.insert(gathered.id, (a.clone(), onehot));
        gathered
    }

    /// Slices and integer indices: blocks of equal size along each axis (`a[:, H:2*H]`,
    /// `x[:k]`, `a[:, 0]`), as products with selection matrices.
    fn slice(&mut self, a: Arr, items: &[Index], scope: &mut Scope, span: Span) -> Result<Value, Error> {
        if items.len() > a.shape.len() {
            return Err(Error::unsupported(
                format!("too many indices for a {} array", np_shape_text(&a.shape)),
                span,
            ));
        }
        let unsupported = |why: &str| {
            Error::unsupported(format!("this index is not supported: {why}"), span).with_note(
                "matdiff reads slices into equal blocks (`a[:, H:2*H]` of `4*H` columns, `x[:k]`), integer indices, \
                 `[:, None]`, `x[np.arange(N), y]` with labels and `np.eye(C)[y]`",
            )
        };
        let mut result = a;
        // The last axis first, so that dropping an axis does not move the ones before it.
        for axis in (0..items.len()).rev() {
            let total = result.shape[axis].clone();
            let (start, stop, keep) = match &items[axis] {
                Index::Slice(None, None, None, _) => continue,
                Index::Slice(_, _, Some(_), _) => return Err(unsupported("slices with a step")),
                Index::Slice(lo, hi, None, _) => {
                    let lo = match lo {
                        Some(e) => Some(self.index_dim(e, &total, scope, &unsupported)?),
                        None => None,
                    };
                    let hi = match hi {
                        Some(e) => self.index_dim(e, &total, scope, &unsupported)?,
                        None => total.clone(),
                    };
                    (lo, hi, true)
                }
                Index::Expr(e) => {
                    let start = self.index_dim(e, &total, scope, &unsupported)?;
                    let stop = match start.as_size() {
                        Some(k) => Dim::size(k + 1),
                        None => return Err(unsupported("an index that is a dimension")),
                    };
                    (Some(start).filter(|s| s.as_size() != Some(0)), stop, false)
                }
            };
            let len = match &start {
                None => stop.clone(),
                Some(s) => {
                    dim_minus(&stop, s).ok_or_else(|| unsupported("a slice that is empty or of no known size"))?
                }
            };
            let (k, i) = if keep || len.as_size() != Some(1) {
                let k = dim_ratio(&total, &len)
                    .ok_or_else(|| unsupported("the slice does not cut the axis into equal blocks"))?;
                let i = match &start {
                    None => 0,
                    Some(s) => match dim_ratio(s, &len) {
                        Some(i) => i
                            .as_size()
                            .ok_or_else(|| unsupported("the slice's start is not a whole number of blocks"))?,
                        None => return Err(unsupported("the slice's start is not a whole number of blocks")),
                    },
                };
                (k, i)
            } else {
                (total.clone(), start.as_ref().and_then(Dim::as_size).unwrap_or(0))
            };
            result = self.arrays.block(&result, axis, &k, i, &len, keep);
        }
        Ok(Value::Arr(result))
    }

    /// A slice bound or index as a size: an integer (negative counts from the end of a
    /// numeric axis), a dimension, or a product of them.
    fn index_dim(
        &mut self,
        e: &Expr,
        total: &Dim,
        scope: &mut Scope,
        unsupported: &dyn Fn(&str) -> Error,
    ) -> Result<Dim, Error> {
        match self.eval(e, scope)? {
            Value::Number { value, integer: true } if value >= 0.0 => Ok(Dim::size(value as u64)),
            Value::Number { value, integer: true } => match total.as_size() {
                Some(n) if (n as f64) + value >= 0.0 => Ok(Dim::size((n as f64 + value) as u64)),
                _ => Err(unsupported("a negative index into an axis of symbolic size")),
            },
            Value::Dim(d) => Ok(d),
            _ => Err(unsupported("an index that is not an integer or a size")),
        }
    }

    /// `m[np.arange(N), y] = v` (or `+= v`): the labelled entries replaced (or updated).
    fn scatter(
        &mut self,
        base: &Value,
        items: &[Index],
        value: Value,
        scope: &mut Scope,
        span: Span,
        is_update: bool,
    ) -> Result<Value, Error> {
        if let Some(mask) = self.mask_index(items, scope)? {
            return self.masked_assign(base.clone(), &mask, value, span);
        }
        let unsupported = || {
            Error::unsupported(
                "only `m[np.arange(N), y] = v` (labels) and `m[mask] = v` (a comparison mask) can be assigned to by index",
                span,
            )
        };
        let (Value::Arr(m), [Index::Expr(r), Index::Expr(c)]) = (base, items) else {
            return Err(unsupported());
        };
        let (rv, cv) = (self.eval(r, scope)?, self.eval(c, scope)?);
        let (Value::Arange(_), Value::Labels { onehot, .. }) = (&rv, &cv) else {
            return Err(unsupported());
        };
        let onehot = *onehot;
        labels_fit(&cv, &m.shape, span)?;
        // The new entries: `value` (for `+=`, already the updated entries) as a column over the rows.
        let v = self.to_arr(value, span)?;
        let rows = m.shape[0].clone();
        let column = if v.shape.is_empty() {
            v
        } else {
            Arr {
                shape: vec![rows, Dim::one()],
                ..v
            }
        };
        let _ = is_update;
        let y = Arr {
            id: self.arrays.add(Math::Symbol(onehot)),
            shape: m.shape.clone(),
            name: None,
        };
        // m ⊙ (1·1ᵀ − Y) + Y ⊙ (v·1ᵀ)
        let ones = self.arrays.ones(&m.shape, 1.0);
        self.stored_through(m, &y, &ones, &column, span)
    }

    fn call(
        &mut self,
        f: Value,
        args: Vec<(Value, Span)>,
        kwargs: Vec<(String, Value, Span)>,
        fspan: Span,
        span: Span,
    ) -> Result<Value, Error> {
        match f {
            Value::Helper(name) => self.inline(&name, args, kwargs, span),
            Value::Function(name, receiver) => {
                let mut call = Call {
                    name: name.clone(),
                    args,
                    kwargs,
                    span,
                    fspan,
                };
                if let Some(r) = receiver {
                    call.args.insert(0, (*r, fspan));
                    let method = name.trim_start_matches("method.");
                    call.name = format!("np.{method}");
                    return self.numpy_call(call, true);
                }
                self.numpy_call(call, false)
            }
            _ => Err(Error::unsupported("this value is not a function", fspan)),
        }
    }

    fn inline(
        &mut self,
        name: &str,
        args: Vec<(Value, Span)>,
        kwargs: Vec<(String, Value, Span)>,
        span: Span,
    ) -> Result<Value, Error> {
        let local = self.local_functions.get(name).cloned();
        let f = match &local {
            Some(f) => f,
            None => self.functions[name],
        };
        let name = f.name.as_str();
        if self.depth >= MAX_CALL_DEPTH {
            return Err(Error::unsupported(
                format!("calls nest deeper than {MAX_CALL_DEPTH} levels (is `{name}` recursive?)"),
                span,
            ));
        }
        let mut scope = Scope::new();
        if args.len() > f.params.len() {
            return Err(Error::name(
                format!(
                    "`{name}` takes {} arguments, but {} were given",
                    f.params.len(),
                    args.len()
                ),
                span,
            ));
        }
        for (p, (v, _)) in f.params.iter().zip(args) {
            scope.insert(p.name.clone(), v);
        }
        for (k, v, kspan) in kwargs {
            if !f.params.iter().any(|p| p.name == k) {
                return Err(Error::name(format!("`{name}` has no parameter `{k}`"), kspan));
            }
            scope.insert(k, v);
        }
        for p in &f.params {
            if !scope.contains_key(&p.name) {
                match &p.default {
                    Some(d) => {
                        let v = self.eval(d, &mut scope)?;
                        scope.insert(p.name.clone(), v);
                    }
                    None => {
                        return Err(Error::name(
                            format!("`{name}` is called without its argument `{}`", p.name),
                            span,
                        ))
                    }
                }
            }
        }
        let params: HashMap<String, Id> = scope
            .iter()
            .filter_map(|(n, v)| match v {
                Value::Arr(a) => Some((n.clone(), a.id)),
                _ => None,
            })
            .collect();
        self.helper_params.push(params);
        self.depth += 1;
        let result = self.body(&f.body, &mut scope);
        self.depth -= 1;
        self.helper_params.pop();
        let depth = self.depth;
        self.aliases.retain(|(d, _, _)| *d <= depth);
        match result? {
            Some((v, _)) => Ok(v),
            None => Ok(Value::NoneV),
        }
    }

    fn numpy_call(&mut self, mut c: Call, method: bool) -> Result<Value, Error> {
        let name = c.name.strip_prefix("np.").unwrap_or(&c.name).to_string();
        let name = name.as_str();
        if let Some(f) = name.strip_prefix("math.") {
            let f = f.to_string();
            return self.math_call(&f, c);
        }
        let entrywise = elementwise_by_numpy_name(name).is_some()
            || matches!(
                name,
                "abs" | "absolute" | "square" | "reciprocal" | "negative" | "log2" | "log10" | "exp2" | "copy"
            );
        if let (true, [(Value::Masked { values, mask }, span)]) = (entrywise, c.args.as_slice()) {
            // An entrywise function of a masked selection is the selection of the function.
            let (values, mask, span) = (values.clone(), mask.clone(), *span);
            c.args = vec![(Value::Arr(values), span)];
            let r = self.numpy_call(c, method)?;
            return Self::masked(r, mask);
        }
        match name {
            "sum" | "mean" | "var" | "std" | "max" | "min" | "amax" | "amin" => {
                let a = c.array(self, 0, "a")?;
                let axis = c.axis(self, &a, 1)?;
                let keepdims = c.flag("keepdims")?;
                let ddof = match c.keyword("ddof") {
                    None => 0.0,
                    Some((_, Value::Number { value, integer: true }, _)) if matches!(name, "var" | "std") => *value,
                    Some((_, _, span)) => {
                        return Err(Error::unsupported(
                            "`ddof` is read as an integer of `var` and `std`",
                            *span,
                        ))
                    }
                };
                match name {
                    "sum" => Ok(Value::Arr(self.arrays.sum(&a, axis, keepdims))),
                    "mean" => Ok(Value::Arr(self.arrays.mean(&a, axis, keepdims))),
                    "var" => Ok(Value::Arr(self.arrays.var(&a, axis, keepdims, ddof, c.span)?)),
                    "std" => {
                        let v = self.arrays.var(&a, axis, keepdims, ddof, c.span)?;
                        Ok(Value::Arr(self.arrays.apply(&v, "sqrt")))
                    }
                    "max" | "amax" => Ok(Value::Arr(self.arrays.max(&a, axis, keepdims, c.span)?)),
                    _ => {
                        // min(a) = −max(−a)
                        let negated = Arr {
                            id: self.arrays.negate(a.id),
                            ..a
                        };
                        let m = self.arrays.max(&negated, axis, keepdims, c.span)?;
                        Ok(Value::Arr(Arr {
                            id: self.arrays.negate(m.id),
                            ..m
                        }))
                    }
                }
            }
            "dot" | "matmul" => {
                let a = c.array(self, 0, "a")?;
                let b = c.array(self, 1, "b")?;
                Ok(Value::Arr(self.arrays.matmul(&a, &b, c.span, name)?))
            }
            "outer" => {
                let a = c.array(self, 0, "a")?;
                let b = c.array(self, 1, "b")?;
                let bt = self.arrays.add(Math::Transpose(b.id));
                let id = self.arrays.add(Math::Mul([a.id, bt]));
                let shape = vec![
                    a.shape.first().cloned().unwrap_or_else(Dim::one),
                    b.shape.first().cloned().unwrap_or_else(Dim::one),
                ];
                Ok(Value::Arr(Arr { id, shape, name: None }))
            }
            "transpose" => {
                let a = c.array(self, 0, "a")?;
                let id = self.arrays.transpose(a.id, &a.shape);
                let mut shape = a.shape.clone();
                shape.reverse();
                Ok(Value::Arr(Arr { id, shape, name: None }))
            }
            "linalg.norm" => self.norm(&c),
            "trace" | "linalg.det" | "linalg.inv" => {
                let a = c.array(self, 0, "a")?;
                let square = a.shape.len() == 2 && a.shape[0] == a.shape[1];
                if !square {
                    return Err(Error::shape(
                        format!("`np.{name}` needs a square 2-D array, not {}", np_shape_text(&a.shape)),
                        c.span,
                    ));
                }
                let (node, shape) = match name {
                    "trace" => (Math::Trace(a.id), vec![]),
                    "linalg.det" => (Math::Det(a.id), vec![]),
                    _ => (Math::Inv(a.id), a.shape.clone()),
                };
                Ok(Value::Arr(Arr {
                    id: self.arrays.add(node),
                    shape,
                    name: None,
                }))
            }
            "ones" | "zeros" | "ones_like" | "zeros_like" | "empty_like" | "full" | "full_like" => {
                let like = name.ends_with("_like");
                let shape = if like {
                    c.array(self, 0, "a")?.shape
                } else {
                    c.shape_arg(self, 0)?
                };
                let value = match name {
                    "ones" | "ones_like" => 1.0,
                    "full" | "full_like" => c.number(1, "fill_value")?,
                    _ => 0.0,
                };
                Ok(Value::Arr(self.arrays.ones(&shape, value)))
            }
            "eye" | "identity" => {
                let n = c.size(self, 0)?;
                let dn = self.arrays.builder.dim(&n);
                Ok(Value::Arr(Arr {
                    id: self.arrays.add(Math::Eye(dn)),
                    shape: vec![n.clone(), n],
                    name: None,
                }))
            }
            "arange" | "builtins.range" => {
                if c.args.len() != 1 {
                    return Err(Error::unsupported(
                        "only `np.arange(N)` (row indices) is supported",
                        c.span,
                    ));
                }
                Ok(Value::Arange(c.size(self, 0)?))
            }
            "square" => {
                let a = c.array(self, 0, "x")?;
                Ok(Value::Arr(self.arrays.power(&a, 2.0)))
            }
            "power" => {
                let a = c.array(self, 0, "x")?;
                let k = c.number(1, "exponent")?;
                Ok(Value::Arr(self.arrays.power(&a, k)))
            }
            "reciprocal" => {
                let a = c.array(self, 0, "x")?;
                Ok(Value::Arr(self.arrays.power(&a, -1.0)))
            }
            "maximum" | "minimum" => self.maximum(&mut c, name == "maximum"),
            "concatenate" | "hstack" | "vstack" | "row_stack" | "stack" | "column_stack" => {
                let parts = match c.get(0, "arrays").or_else(|| c.get(0, "tup")) {
                    Some((Value::Tuple(vs), span)) => {
                        vs.into_iter()
                            .map(|v| self.to_arr(v, span))
                            .collect::<Result<Vec<Arr>, Error>>()?
                    }
                    _ => {
                        return Err(Error::unsupported(
                            format!("`np.{name}` takes a list of arrays"),
                            c.span,
                        ))
                    }
                };
                let ndim = parts.first().map_or(0, |p| p.shape.len());
                // Stacking 1-D arrays: each one a row (`vstack`, `stack`) or a column
                // (`column_stack`, `stack(..., axis=1)`), then those concatenated.
                let as_rows = matches!(name, "vstack" | "row_stack") || (name == "stack" && c.axis_of_stack()? == 0);
                let as_columns = name == "column_stack" || (name == "stack" && c.axis_of_stack()? == 1);
                if ndim == 1 && (as_rows || as_columns) {
                    let parts: Vec<Arr> = parts
                        .iter()
                        .map(|p| {
                            if as_rows {
                                Arr {
                                    id: self.arrays.add(Math::Transpose(p.id)),
                                    shape: vec![Dim::one(), p.shape[0].clone()],
                                    name: None,
                                }
                            } else {
                                Arr {
                                    shape: vec![p.shape[0].clone(), Dim::one()],
                                    ..p.clone()
                                }
                            }
                        })
                        .collect();
                    if parts.iter().any(|p| p.shape != parts[0].shape) {
                        return Err(Error::shape("all input arrays must have the same shape", c.span));
                    }
                    return Ok(Value::Arr(self.arrays.concatenate(&parts, usize::from(as_columns))));
                }
                if name == "stack" && ndim >= 2 {
                    return Err(Error::unsupported(
                        "`np.stack` of 2-D arrays makes a 3-D array; matdiff's arrays have at most two axes",
                        c.span,
                    ));
                }
                let axis = match name {
                    "hstack" => usize::from(ndim == 2),
                    "vstack" | "row_stack" => 0,
                    "column_stack" => 1,
                    _ => match c.get(1, "axis") {
                        None => 0,
                        Some((Value::Number { value, integer: true }, _)) if value >= 0.0 => value as usize,
                        Some((Value::Number { value, integer: true }, _)) => (ndim as f64 + value).max(0.0) as usize,
                        Some((_, span)) => return Err(Error::unsupported("`axis` must be an integer", span)),
                    },
                };
                let same = parts.iter().all(|p| p.shape == parts[0].shape);
                if parts.is_empty() || ndim == 0 || axis >= ndim || !same {
                    let shapes: Vec<String> = parts.iter().map(|p| np_shape_text(&p.shape)).collect();
                    return Err(Error::unsupported(
                        format!(
                            "matdiff concatenates arrays of one shape along an existing axis; these are {}",
                            shapes.join(", ")
                        ),
                        c.span,
                    )
                    .with_note(
                        "sizes are products of dimensions, so a concatenation of sizes D and H (D + H) has no size",
                    ));
                }
                Ok(Value::Arr(self.arrays.concatenate(&parts, axis)))
            }
            "clip" => {
                let a = c.array(self, 0, "a")?;
                // `np.clip(a, a_min, a_max)`, also `min=`/`max=` as numpy 2 and `ndarray.clip` spell them.
                let bound = |this: &mut Self, k: usize, name: &str| -> Result<Option<Arr>, Error> {
                    let short = name.trim_start_matches("a_");
                    match c
                        .get(k, name)
                        .or_else(|| c.keyword(short).map(|(_, v, s)| (v.clone(), *s)))
                    {
                        None | Some((Value::NoneV, _)) => Ok(None),
                        Some((v, span)) => this.to_arr(v, span).map(Some),
                    }
                };
                let (lo, hi) = (bound(self, 1, "a_min")?, bound(self, 2, "a_max")?);
                // clip(x, lo, hi) = lo + relu(x − lo) − relu(x − hi) for lo ≤ hi; one-sided,
                // lo + relu(x − lo) or hi − relu(hi − x).
                let mut out = a.clone();
                if let Some(lo) = &lo {
                    let above = self.arrays.elementwise(Elementwise::Sub, &a, lo, c.span)?;
                    let r = self.arrays.apply(&above, "relu");
                    out = self.arrays.elementwise(Elementwise::Add, lo, &r, c.span)?;
                }
                if let Some(hi) = &hi {
                    let r = match &lo {
                        Some(_) => {
                            let above = self.arrays.elementwise(Elementwise::Sub, &a, hi, c.span)?;
                            self.arrays.apply(&above, "relu")
                        }
                        None => {
                            let below = self.arrays.elementwise(Elementwise::Sub, hi, &a, c.span)?;
                            out = hi.clone();
                            self.arrays.apply(&below, "relu")
                        }
                    };
                    out = self.arrays.elementwise(Elementwise::Sub, &out, &r, c.span)?;
                }
                Ok(Value::Arr(out))
            }
            "diag" => {
                let a = c.array(self, 0, "v")?;
                match a.shape.as_slice() {
                    [n] => Ok(Value::Arr(Arr {
                        id: self.arrays.add(Math::Diag(a.id)),
                        shape: vec![n.clone(), n.clone()],
                        name: None,
                    })),
                    [m, n] if m == n => Ok(Value::Arr(Arr {
                        id: self.arrays.add(Math::DiagVec(a.id)),
                        shape: vec![n.clone()],
                        name: None,
                    })),
                    _ => Err(Error::shape(
                        format!(
                            "`np.diag` takes a 1-D or a square 2-D array, not {}",
                            np_shape_text(&a.shape)
                        ),
                        c.span,
                    )),
                }
            }
            "linalg.slogdet" => {
                let a = c.array(self, 0, "a")?;
                let logdet = Arr {
                    id: self.arrays.add(Math::LogDet(a.id)),
                    shape: vec![],
                    name: None,
                };
                Ok(Value::Tuple(vec![
                    Value::Opaque("the sign of a determinant"),
                    Value::Arr(logdet),
                ]))
            }
            "linalg.solve" => {
                let a = c.array(self, 0, "a")?;
                let b = c.array(self, 1, "b")?;
                let inv = Arr {
                    id: self.arrays.add(Math::Inv(a.id)),
                    ..a.clone()
                };
                Ok(Value::Arr(self.arrays.matmul(&inv, &b, c.span, "solve")?))
            }
            "where" => {
                let cond = c.array(self, 0, "condition")?;
                let a = c.array(self, 1, "x")?;
                let b = c.array(self, 2, "y")?;
                // where(c, a, b) = c ⊙ a + (1 − c) ⊙ b for a mask c.
                let one = self.arrays.constant(1.0);
                let other = self.arrays.elementwise(Elementwise::Sub, &one, &cond, c.span)?;
                let x = self.arrays.elementwise(Elementwise::Mul, &cond, &a, c.span)?;
                let y = self.arrays.elementwise(Elementwise::Mul, &other, &b, c.span)?;
                Ok(Value::Arr(self.arrays.elementwise(Elementwise::Add, &x, &y, c.span)?))
            }
            "reshape" => {
                let a = c.array(self, 0, "a")?;
                self.reshape(&a, &c)
            }
            "ravel" | "flatten" | "squeeze" => {
                let a = c.array(self, 0, "a")?;
                match a.shape.as_slice() {
                    [_] | [] => Ok(Value::Arr(a)),
                    [n, one] if one.is_one() => Ok(Value::Arr(Arr {
                        shape: vec![n.clone()],
                        ..a
                    })),
                    _ => Err(Error::unsupported(
                        format!("`{name}` of a {} array is not supported", np_shape_text(&a.shape)),
                        c.span,
                    )),
                }
            }
            "item" if c.array(self, 0, "a")?.shape.iter().all(Dim::is_one) => {
                // A one-entry array's value (`loss.item()`).
                let a = c.array(self, 0, "a")?;
                Ok(Value::Arr(Arr { shape: vec![], ..a }))
            }
            "finfo" => Ok(Value::Module("finfo")),
            "einsum" => self.einsum(&c),
            "copy" | "astype" | "array" | "asarray" | "builtins.float" => {
                let a = c.array(self, 0, "a")?;
                Ok(Value::Arr(a))
            }
            "builtins.len" => match c.args.first() {
                Some((Value::Arr(a), _)) if !a.shape.is_empty() => Ok(Value::Dim(a.shape[0].clone())),
                Some((Value::Labels { n, .. }, _)) => Ok(Value::Dim(n.clone())),
                _ => Err(Error::unsupported("`len` of this value", c.span)),
            },
            "builtins.int" => match c.args.first() {
                Some((v @ (Value::Dim(_) | Value::Number { .. }), _)) => Ok(v.clone()),
                _ => Err(Error::unsupported("`int` of this value", c.span)),
            },
            "builtins.abs" => {
                let a = c.array(self, 0, "x")?;
                Ok(Value::Arr(self.arrays.apply(&a, "abs")))
            }
            "builtins.max" | "builtins.min" => self.builtin_extreme(&c, name == "builtins.max"),
            "builtins.sum" => {
                // Python's `sum` adds the items it iterates: a list's items, an array's rows.
                let (items, start) = match c.args.as_slice() {
                    [(Value::Tuple(items), _)] => (items.clone(), None),
                    [(Value::Tuple(items), _), (s, _)] => (items.clone(), Some(s.clone())),
                    [(Value::Arr(a), _)] => return Ok(Value::Arr(self.arrays.sum(a, Some(0), false))),
                    _ => {
                        return Err(Error::unsupported(
                            "Python's `sum` is read of a list of values or of one array; use `np.sum`",
                            c.fspan,
                        ))
                    }
                };
                let mut total = start.unwrap_or(Value::Number {
                    value: 0.0,
                    integer: true,
                });
                for item in items {
                    total = self.binary(BinOp::Add, total, item, c.span)?;
                }
                Ok(total)
            }
            "builtins.pow" | "float_power" => {
                let (a, b) = (c.get(0, "x1"), c.get(1, "x2"));
                let ((a, _), (b, _)) = (a.ok_or_else(|| c.missing("x1"))?, b.ok_or_else(|| c.missing("x2"))?);
                self.binary(BinOp::Pow, a, b, c.span)
            }
            "add" | "subtract" | "multiply" | "divide" | "true_divide" => {
                // numpy's ufuncs of the operators: the operators themselves.
                let op = match name {
                    "add" => BinOp::Add,
                    "subtract" => BinOp::Sub,
                    "multiply" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let (a, b) = (c.get(0, "x1"), c.get(1, "x2"));
                let ((a, _), (b, _)) = (a.ok_or_else(|| c.missing("x1"))?, b.ok_or_else(|| c.missing("x2"))?);
                self.binary(op, a, b, c.span)
            }
            "negative" => {
                let (a, _) = c.get(0, "x").ok_or_else(|| c.missing("x"))?;
                let minus_one = Value::Number {
                    value: -1.0,
                    integer: true,
                };
                self.binary(BinOp::Mul, minus_one, a, c.span)
            }
            "positive" | "float64" | "float32" | "float16" | "float_" | "double" | "longdouble" => {
                // A cast to a float type changes no value matdiff computes with.
                match c.get(0, "x") {
                    Some((v @ (Value::Number { .. } | Value::Dim(_)), _)) if name != "positive" => Ok(v),
                    _ => Ok(Value::Arr(c.array(self, 0, "x")?)),
                }
            }
            "log2" | "log10" | "exp2" => {
                // log_b(x) = ln(x)/ln(b); 2^x = exp(x·ln 2).
                let a = c.array(self, 0, "x")?;
                let base: f64 = if name == "log10" { 10.0 } else { 2.0 };
                let ln_base = self.arrays.constant(base.ln());
                if name == "exp2" {
                    let scaled = self.arrays.elementwise(Elementwise::Mul, &ln_base, &a, c.span)?;
                    return Ok(Value::Arr(self.arrays.apply(&scaled, "exp")));
                }
                let ln = self.arrays.apply(&a, "log");
                Ok(Value::Arr(self.arrays.elementwise(
                    Elementwise::Div,
                    &ln,
                    &ln_base,
                    c.span,
                )?))
            }
            "inner" | "vdot" => {
                let a = c.array(self, 0, "a")?;
                let b = c.array(self, 1, "b")?;
                if name == "vdot" || (a.shape.len() < 2 && b.shape.len() < 2) {
                    // The sum of the products of corresponding entries.
                    if name == "vdot" && a.shape != b.shape {
                        return Err(Error::shape(
                            format!(
                                "`np.vdot` of shapes {} and {}: matdiff reads it for arrays of one shape",
                                np_shape_text(&a.shape),
                                np_shape_text(&b.shape)
                            ),
                            c.span,
                        ));
                    }
                    let product = self.arrays.elementwise(Elementwise::Mul, &a, &b, c.span)?;
                    return Ok(Value::Arr(self.arrays.sum(&product, None, false)));
                }
                // inner(a, b) contracts the last axes: a · bᵀ.
                let bt = Arr {
                    id: self.arrays.transpose(b.id, &b.shape),
                    shape: b.shape.iter().rev().cloned().collect(),
                    name: None,
                };
                Ok(Value::Arr(self.arrays.matmul(&a, &bt, c.span, "inner")?))
            }
            "expand_dims" => {
                let a = c.array(self, 0, "a")?;
                let axis = match c.get(1, "axis") {
                    Some((Value::Number { value, integer: true }, _)) => value as i64,
                    Some((_, span)) => return Err(Error::unsupported("`axis` must be an integer", span)),
                    None => return Err(c.missing("axis")),
                };
                match (a.shape.as_slice(), axis) {
                    ([], _) => Ok(Value::Arr(Arr {
                        shape: vec![Dim::one()],
                        ..a
                    })),
                    ([n], 0 | -2) => Ok(Value::Arr(Arr {
                        id: self.arrays.add(Math::Transpose(a.id)),
                        shape: vec![Dim::one(), n.clone()],
                        name: None,
                    })),
                    ([n], 1 | -1) => Ok(Value::Arr(Arr {
                        shape: vec![n.clone(), Dim::one()],
                        name: None,
                        ..a
                    })),
                    _ => Err(Error::unsupported(
                        format!(
                            "`np.expand_dims` of a {} array makes a 3-D array; matdiff's arrays have at most two axes",
                            np_shape_text(&a.shape)
                        ),
                        c.span,
                    )),
                }
            }
            "prod" => match c.get(0, "a") {
                // `np.prod(x.shape[1:])`: a product of sizes.
                Some((Value::Tuple(items), span)) => {
                    items
                        .iter()
                        .try_fold(Value::Dim(Dim::one()), |acc, v| match (dim_of(&acc), dim_of(v)) {
                            (Some(x), Some(y)) => Ok(Value::Dim(x.times(&y))),
                            _ => Err(Error::unsupported("`np.prod` is read of sizes (`x.shape[1:]`)", span)),
                        })
                }
                Some((v @ Value::Dim(_), _)) => Ok(v),
                _ => Err(Error::unsupported(
                    "`np.prod` is read of sizes (`np.prod(x.shape[1:])`), not of arrays",
                    c.fspan,
                )),
            },
            "split" | "array_split" | "hsplit" | "vsplit" => {
                let a = c.array(self, 0, "ary")?;
                let k = match c.get(1, "indices_or_sections") {
                    Some((Value::Number { value, integer: true }, _)) if value >= 1.0 => value as u64,
                    Some((_, span)) => {
                        return Err(Error::unsupported(
                            format!("`np.{name}` is read into a number of equal parts (`np.split(a, 4, axis=1)`)"),
                            span,
                        ))
                    }
                    None => return Err(c.missing("indices_or_sections")),
                };
                let axis = match name {
                    "hsplit" => usize::from(a.shape.len() == 2),
                    "vsplit" => 0,
                    _ => c.axis(self, &a, 2)?.unwrap_or(0),
                };
                let Some(total) = a.shape.get(axis).cloned() else {
                    return Err(Error::unsupported(format!("`np.{name}` of a scalar"), c.span));
                };
                let parts = Dim::size(k);
                let len = dim_ratio(&total, &parts).ok_or_else(|| {
                    Error::unsupported(
                        format!(
                            "`np.{name}` into {k} parts of an axis of size {}: the parts must be equal",
                            total.render("*")
                        ),
                        c.span,
                    )
                })?;
                let blocks = (0..k)
                    .map(|i| Value::Arr(self.arrays.block(&a, axis, &parts, i, &len, true)))
                    .collect();
                Ok(Value::Tuple(blocks))
            }
            "tile" => {
                // `np.tile(b, (N, 1))` repeats along axes of size 1 only: a broadcast.
                let a = c.array(self, 0, "A")?;
                let (reps, span) = c.get(1, "reps").ok_or_else(|| c.missing("reps"))?;
                let reps = match reps {
                    Value::Tuple(vs) => vs,
                    v => vec![v],
                };
                let reps: Vec<Dim> = reps
                    .iter()
                    .map(|v| dim_of(v).ok_or_else(|| Error::unsupported("`reps` must be sizes", span)))
                    .collect::<Result<_, _>>()?;
                let n = reps.len().max(a.shape.len());
                if n > 2 {
                    return Err(Error::unsupported("matdiff's arrays have at most two axes", span));
                }
                let pad = |s: &[Dim]| -> Vec<Dim> {
                    let mut v = vec![Dim::one(); n - s.len()];
                    v.extend(s.iter().cloned());
                    v
                };
                let (from, reps) = (pad(&a.shape), pad(&reps));
                let mut to = Vec::new();
                for (d, r) in from.iter().zip(&reps) {
                    if r.is_one() {
                        to.push(d.clone());
                    } else if d.is_one() {
                        to.push(r.clone());
                    } else {
                        return Err(Error::unsupported(
                            "`np.tile` is read where it repeats axes of size 1 (a broadcast, `np.tile(b, (N, 1))`)",
                            c.span,
                        ));
                    }
                }
                let id = self.arrays.stretch(&a, &to);
                Ok(Value::Arr(Arr {
                    id,
                    shape: to,
                    name: None,
                }))
            }
            "take_along_axis" => {
                let a = c.array(self, 0, "arr")?;
                let axis = c.axis(self, &a, 2)?;
                match (c.get(1, "indices"), a.shape.as_slice(), axis) {
                    (Some((Value::LabelsColumn(labels), _)), [rows, _], Some(1)) => {
                        labels_fit(&labels, &a.shape, c.span)?;
                        let Value::Labels { n, onehot, .. } = *labels else {
                            unreachable!("a labels column holds labels")
                        };
                        if n != *rows {
                            return Err(Error::shape(
                                format!("the labels and the array's {} rows must agree", rows.render("*")),
                                c.span,
                            ));
                        }
                        // The gather x[np.arange(N), y] as a column.
                        let gathered = self.gather(&a, onehot);
                        Ok(Value::Arr(Arr {
                            shape: vec![n, Dim::one()],
                            ..gathered
                        }))
                    }
                    _ => Err(Error::unsupported(
                        "`np.take_along_axis` is read as `np.take_along_axis(x, y[:, None], axis=1)` with labels `y`",
                        c.span,
                    )),
                }
            }
            "absolute" | "abs" => {
                let a = c.array(self, 0, "x")?;
                Ok(Value::Arr(self.arrays.apply(&a, "abs")))
            }
            "logaddexp" => {
                // logaddexp(a, b) = log(exp(a) + exp(b)); with a = 0 it is softplus.
                let a = c.array(self, 0, "x1")?;
                let b = c.array(self, 1, "x2")?;
                let ea = self.arrays.apply(&a, "exp");
                let eb = self.arrays.apply(&b, "exp");
                let s = self.arrays.elementwise(Elementwise::Add, &ea, &eb, c.span)?;
                Ok(Value::Arr(self.arrays.apply(&s, "log")))
            }
            "random.randn" | "random.rand" | "random.random" | "random.normal" | "random.uniform" => {
                Err(Error::unsupported(
                    "random numbers are not differentiable: pass them in as a parameter (e.g. a dropout mask)",
                    c.fspan,
                ))
            }
            _ => {
                if let Some(f) = elementwise_by_numpy_name(name) {
                    let a = c.array(self, 0, "x")?;
                    if let Some((whole, onehot)) = self.gathers.get(&a.id).cloned() {
                        // For one-hot Y, f((A ⊙ Y)·1) = (f(A) ⊙ Y)·1: each row picks one entry,
                        // so `log(probs[np.arange(N), y])` is the gather of log(probs).
                        let mapped = self.arrays.apply(&whole, f);
                        let y = self.arrays.add(Math::Symbol(onehot));
                        let picked = Arr {
                            id: self.arrays.add(Math::Had([mapped.id, y])),
                            ..mapped
                        };
                        let gathered = self.arrays.sum(&picked, Some(1), false);
                        self.gathers.insert(gathered.id, (picked, onehot));
                        return Ok(Value::Arr(gathered));
                    }
                    return Ok(Value::Arr(self.arrays.apply(&a, f)));
                }
                let what = if method {
                    format!("the array method `.{name}`")
                } else {
                    format!("`np.{name}`")
                };
                Err(Error::unsupported(format!("{what} is not supported"), c.fspan)
                    .with_note("see README's numpy dialect section for the functions matdiff reads"))
            }
        }
    }

    /// `np.einsum` of one or two operands of at most two axes: each operand's own indices
    /// summed out first, then a matrix product (one contracted index between two others) or a
    /// Hadamard product with broadcasting summed over the contracted indices.
    fn einsum(&mut self, c: &Call) -> Result<Value, Error> {
        let refuse = |why: &str| {
            Error::unsupported(format!("this `np.einsum` is not supported: {why}"), c.span).with_note(
                "matdiff reads einsum of one or two arrays of at most two axes (`ij,jk->ik`, `ij,ij->i`, `ij->`)",
            )
        };
        let Some((Value::Str(spec), _)) = c.args.first() else {
            return Err(refuse("the subscripts must be a string"));
        };
        let spec: String = spec.chars().filter(|ch| !ch.is_whitespace()).collect();
        if spec.contains("...") {
            return Err(refuse("`...` subscripts"));
        }
        let (inputs, output) = match spec.split_once("->") {
            Some((i, o)) => (i.to_string(), o.chars().collect::<Vec<char>>()),
            None => {
                // Implicit mode: the indices that appear once, in alphabetical order.
                let all: Vec<char> = spec.chars().filter(|ch| *ch != ',').collect();
                let mut once: Vec<char> = all
                    .iter()
                    .copied()
                    .filter(|x| all.iter().filter(|y| *y == x).count() == 1)
                    .collect();
                once.sort_unstable();
                (spec.clone(), once)
            }
        };
        let subscripts: Vec<Vec<char>> = inputs.split(',').map(|s| s.chars().collect()).collect();
        let operands: Vec<Arr> = (1..c.args.len())
            .map(|k| c.array(self, k, "operands"))
            .collect::<Result<_, _>>()?;
        if operands.len() != subscripts.len() || operands.is_empty() || operands.len() > 2 {
            return Err(refuse("one or two operands, one subscript each"));
        }
        if output.len() > 2 {
            return Err(refuse("the result would have more than two axes"));
        }
        let mut sizes: HashMap<char, Dim> = HashMap::new();
        for (sub, a) in subscripts.iter().zip(&operands) {
            if sub.len() != a.shape.len() {
                return Err(Error::shape(
                    format!(
                        "einstein sum subscripts string `{}` has {} indices for an operand of shape {}",
                        sub.iter().collect::<String>(),
                        sub.len(),
                        np_shape_text(&a.shape)
                    ),
                    c.span,
                ));
            }
            for (ch, d) in sub.iter().zip(&a.shape) {
                if sizes.get(ch).is_some_and(|e| e != d) {
                    return Err(Error::shape(
                        format!(
                            "einsum: the sizes of index `{ch}` disagree ({} and {})",
                            sizes[ch].render("*"),
                            d.render("*")
                        ),
                        c.span,
                    ));
                }
                sizes.insert(*ch, d.clone());
            }
        }
        // Each operand alone: its repeated index (a diagonal) and the indices nothing else uses.
        let mut reduced: Vec<(Arr, Vec<char>)> = Vec::new();
        for (k, (sub, a)) in subscripts.iter().zip(&operands).enumerate() {
            let (mut a, mut sub) = (a.clone(), sub.clone());
            if sub.len() == 2 && sub[0] == sub[1] {
                a = Arr {
                    id: self.arrays.add(Math::DiagVec(a.id)),
                    shape: vec![a.shape[0].clone()],
                    name: None,
                };
                sub = vec![sub[0]];
            }
            let used_elsewhere = |ch: char| {
                output.contains(&ch) || subscripts.iter().enumerate().any(|(j, s)| j != k && s.contains(&ch))
            };
            for axis in (0..sub.len()).rev() {
                if !used_elsewhere(sub[axis]) {
                    a = self.arrays.sum(&a, Some(axis).filter(|_| a.shape.len() == 2), false);
                    sub.remove(axis);
                }
            }
            reduced.push((a, sub));
        }
        let mut union: Vec<char> = output.clone();
        for (_, sub) in &reduced {
            for ch in sub {
                if !union.contains(ch) {
                    union.push(*ch);
                }
            }
        }
        let result = match (reduced.as_slice(), union.len()) {
            ([(a, sa)], _) => self.align(a, sa, &union),
            ([(a, sa), (b, sb)], 3) => {
                // A matrix product: one index in both and not kept, one of each operand's own.
                let k = *sa
                    .iter()
                    .find(|ch| sb.contains(ch) && !output.contains(ch))
                    .ok_or_else(|| refuse("three indices, none contracted"))?;
                let (Some(i), Some(j)) = (sa.iter().find(|ch| **ch != k), sb.iter().find(|ch| **ch != k)) else {
                    return Err(refuse("three indices that are not a matrix product"));
                };
                if sb.contains(i) || sa.contains(j) || output != [*i, *j] && output != [*j, *i] {
                    return Err(refuse("three indices that are not a matrix product"));
                }
                let left = self.align(a, sa, &[*i, k]);
                let right = self.align(b, sb, &[k, *j]);
                let product = self.arrays.matmul(&left, &right, c.span, "einsum")?;
                // The product has contracted its index already.
                return Ok(Value::Arr(self.align(&product, &[*i, *j], &output)));
            }
            ([(a, sa), (b, sb)], n) if n <= 2 => {
                let left = self.align(a, sa, &union);
                let right = self.align(b, sb, &union);
                self.arrays.elementwise(Elementwise::Mul, &left, &right, c.span)?
            }
            _ => return Err(refuse("more than three indices")),
        };
        // Sum the contracted indices, which `union` lists after the output's.
        let kept = match (union.len() - output.len(), output.len()) {
            (0, _) => result,
            (_, 0) => self.arrays.sum(&result, None, false),
            _ => self.arrays.sum(&result, Some(1), false),
        };
        Ok(Value::Arr(kept))
    }

    /// An operand with indices `sub` laid out along `order` (a superset, at most two): a
    /// transpose, or a 1-D operand as a column where its index comes first (a row broadcasts).
    fn align(&mut self, a: &Arr, sub: &[char], order: &[char]) -> Arr {
        match (sub, order) {
            ([x, y], [p, q]) if x == q && y == p => Arr {
                id: self.arrays.transpose(a.id, &a.shape),
                shape: a.shape.iter().rev().cloned().collect(),
                name: None,
            },
            ([x], [p, _]) if x == p => Arr {
                shape: vec![a.shape[0].clone(), Dim::one()],
                ..a.clone()
            },
            _ => a.clone(),
        }
    }

    /// `np.linalg.norm(x, ord, axis, keepdims)`: the 2-norm of a vector and the Frobenius norm
    /// of a matrix (`ord=None`, `'fro'`, or 2 along an axis), `ord=1` and `ord=np.inf` as sums and
    /// maxima of absolute values; the spectral and nuclear norms are refused.
    fn norm(&mut self, c: &Call) -> Result<Value, Error> {
        let a = c.array(self, 0, "x")?;
        let axis = c.axis(self, &a, 2)?;
        let keepdims = c.flag("keepdims")?;
        let along = axis.is_some() || a.shape.len() < 2;
        enum Ord {
            Two,
            One,
            Inf,
        }
        let ord = match c.get(1, "ord") {
            None | Some((Value::NoneV, _)) => Ord::Two,
            Some((Value::Str(s), _)) if s == "fro" && !along => Ord::Two,
            Some((Value::Number { value, .. }, _)) if value == 2.0 && along => Ord::Two,
            Some((Value::Number { value: 1.0, .. }, _)) => Ord::One,
            Some((Value::Number { value: f64::INFINITY, .. }, _)) => Ord::Inf,
            Some((_, span)) => {
                return Err(Error::unsupported(
                    "this `ord` is not supported: matdiff reads the 2-norm (Frobenius for a matrix), `ord=1` and `ord=np.inf`",
                    span,
                ))
            }
        };
        let keep = |this: &mut Self, r: Arr| -> Arr {
            if keepdims && axis.is_none() {
                let shape = vec![Dim::one(); a.shape.len()];
                return Arr { shape, ..r };
            }
            let _ = this;
            r
        };
        let abs = self.arrays.apply(&a, "abs");
        let r = match (ord, along) {
            (Ord::Two, _) if axis.is_none() => Arr {
                id: self.arrays.add(Math::Norm(a.id)),
                shape: vec![],
                name: None,
            },
            (Ord::Two, _) => {
                let squared = self.arrays.power(&a, 2.0);
                let total = self.arrays.sum(&squared, axis, keepdims);
                self.arrays.apply(&total, "sqrt")
            }
            (Ord::One, true) => self.arrays.sum(&abs, axis, keepdims),
            (Ord::Inf, true) => self.arrays.max(&abs, axis, keepdims, c.span)?,
            // A matrix's 1-norm is its largest column sum of absolute values; its ∞-norm, row sum.
            (Ord::One, false) => {
                let sums = self.arrays.sum(&abs, Some(0), false);
                self.arrays.max(&sums, None, false, c.span)?
            }
            (Ord::Inf, false) => {
                let sums = self.arrays.sum(&abs, Some(1), false);
                self.arrays.max(&sums, None, false, c.span)?
            }
        };
        Ok(Value::Arr(keep(self, r)))
    }

    /// Python's `max`/`min` of numbers and sizes (`1.0 / max(N, 1)`): a size is at least 1,
    /// so `max(N, 1)` is `N` and `min(N, 1)` is 1; anything that depends on the values is refused.
    fn builtin_extreme(&mut self, c: &Call, is_max: bool) -> Result<Value, Error> {
        let which = if is_max { "max" } else { "min" };
        let refuse = |why: &str| {
            Error::unsupported(format!("Python's `{which}` {why}"), c.fspan).with_note(format!(
                "for arrays use `np.{which}imum(a, b)` (entry by entry) or `np.{which}(x, axis=...)`"
            ))
        };
        if c.args.len() < 2 || !c.kwargs.is_empty() {
            return Err(refuse("is read of two or more numbers or sizes"));
        }
        let mut numbers: Vec<f64> = Vec::new();
        let mut sizes: Vec<Dim> = Vec::new();
        let mut integer = true;
        for (v, _) in &c.args {
            match v {
                Value::Number { value, integer: i } => {
                    numbers.push(*value);
                    integer &= *i;
                }
                Value::Dim(d) => match d.as_size() {
                    Some(n) => numbers.push(n as f64),
                    None => sizes.push(d.clone()),
                },
                _ => return Err(refuse("of arrays is not supported")),
            }
        }
        let pick = |xs: &[f64]| {
            xs.iter()
                .copied()
                .reduce(|a, b| if is_max { a.max(b) } else { a.min(b) })
        };
        if sizes.is_empty() {
            let value = pick(&numbers).expect("two or more arguments");
            return Ok(Value::Number { value, integer });
        }
        let same = sizes.iter().all(|d| *d == sizes[0]);
        let at_most_one = numbers.iter().all(|x| *x <= 1.0);
        match (same && at_most_one, is_max, pick(&numbers)) {
            (true, true, _) | (true, false, None) => Ok(Value::Dim(sizes[0].clone())),
            (true, false, Some(value)) => Ok(Value::Number { value, integer }),
            _ => Err(refuse("of these sizes depends on their values")),
        }
    }

    /// Python's `math` on a number: computed; on a size or an array: numpy's function.
    fn math_call(&mut self, f: &str, mut c: Call) -> Result<Value, Error> {
        // The operator table's value for what it holds; the rest are math's own names.
        let numeric = |x: f64| -> Option<f64> {
            Some(match f {
                "log2" => x.log2(),
                "log10" => x.log10(),
                "fabs" => x.abs(),
                _ => {
                    let spec = crate::ops::Func::called(f)?.spec();
                    if spec.parameter.is_some() {
                        return None;
                    }
                    (spec.eval)(x, 0.0)
                }
            })
        };
        if let [(Value::Number { value, .. }, _)] = c.args.as_slice() {
            if let Some(value) = numeric(*value) {
                return Ok(Value::Number { value, integer: false });
            }
        }
        match f {
            "log" if c.args.len() == 2 => {
                // math.log(x, base) = ln(x)/ln(base)
                let (base, span) = c.args.pop().expect("two arguments");
                let ln_x = self.math_call(
                    "log",
                    Call {
                        args: c.args.clone(),
                        ..c
                    },
                )?;
                let ln_base = self.math_call(
                    "log",
                    Call {
                        name: "math.log".into(),
                        args: vec![(base, span)],
                        kwargs: vec![],
                        span,
                        fspan: span,
                    },
                )?;
                self.binary(BinOp::Div, ln_x, ln_base, span)
            }
            "pow" => self.numpy_call(
                Call {
                    name: "builtins.pow".into(),
                    ..c
                },
                false,
            ),
            _ if numeric(1.0).is_some() => {
                let numpy = if f == "fabs" { "abs" } else { f };
                self.numpy_call(
                    Call {
                        name: format!("np.{numpy}"),
                        ..c
                    },
                    false,
                )
            }
            _ => Err(Error::unsupported(format!("`math.{f}` is not supported"), c.fspan)
                .with_note("matdiff reads `math.sqrt exp log log2 log10 tanh sin cos pi e` and numpy's functions")),
        }
    }

    /// `np.maximum(a, b)`: ReLU when one side is 0; else `b + relu(a − b)`.
    fn maximum(&mut self, c: &mut Call, is_max: bool) -> Result<Value, Error> {
        let a = c.array(self, 0, "x1")?;
        let b = c.array(self, 1, "x2")?;
        let zero = |this: &Self, x: &Arr| matches!(this.arrays.number_at(x.id), Some(z) if z == 0.0);
        if is_max && zero(self, &b) {
            return Ok(Value::Arr(self.arrays.apply(&a, "relu")));
        }
        if is_max && zero(self, &a) {
            return Ok(Value::Arr(self.arrays.apply(&b, "relu")));
        }
        // max(a, b) = b + relu(a − b); min(a, b) = b − relu(b − a).
        let (x, y, op) = if is_max {
            (&a, &b, Elementwise::Add)
        } else {
            (&b, &a, Elementwise::Sub)
        };
        let diff = self.arrays.elementwise(Elementwise::Sub, x, y, c.span)?;
        let r = self.arrays.apply(&diff, "relu");
        Ok(Value::Arr(self.arrays.elementwise(op, &b, &r, c.span)?))
    }

    fn reshape(&mut self, a: &Arr, c: &Call) -> Result<Value, Error> {
        // The requested shape, after the array: `x.reshape(N, -1)`, `x.reshape((N, -1))`, `np.reshape(x, (N, -1))`.
        let first = 1;
        let mut wanted: Vec<Value> = match c.args.get(first) {
            Some((Value::Tuple(vs), _)) => vs.clone(),
            Some(_) => c.args[first..].iter().map(|(v, _)| v.clone()).collect(),
            None => vec![],
        };
        if wanted.is_empty() {
            return Err(Error::unsupported("`reshape` needs a shape", c.span));
        }
        let total = self.arrays.count(a, None);
        let known: Vec<Option<Dim>> = wanted
            .iter_mut()
            .map(|v| match v {
                Value::Number { value, integer: true } if *value == -1.0 => None,
                other => dim_of(other),
            })
            .collect();
        let mut shape = Vec::new();
        for (k, d) in known.iter().enumerate() {
            match d {
                Some(d) => shape.push(d.clone()),
                None => {
                    // The one -1: what is left of the size.
                    let others = known
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != k)
                        .map(|(_, d)| d.clone())
                        .collect::<Option<Vec<Dim>>>()
                        .ok_or_else(|| Error::shape("`reshape` takes at most one -1", c.span))?;
                    let rest = divide(&total, &others).ok_or_else(|| {
                        Error::unsupported("this `reshape` does not divide the array's size evenly", c.span)
                    })?;
                    shape.push(rest);
                }
            }
        }
        if shape == a.shape {
            return Ok(Value::Arr(a.clone()));
        }
        match (a.shape.as_slice(), shape.as_slice()) {
            ([n], [m, one]) if one.is_one() && m == n => Ok(Value::Arr(Arr { shape, ..a.clone() })),
            ([n], [one, m]) if one.is_one() && m == n => {
                let id = self.arrays.add(Math::Transpose(a.id));
                Ok(Value::Arr(Arr { id, shape, name: None }))
            }
            ([n, one], [m]) if one.is_one() && m == n => Ok(Value::Arr(Arr { shape, ..a.clone() })),
            _ => Err(Error::unsupported(
                format!(
                    "reshaping {} to {} mixes axes; matdiff supports reshapes that keep the axes",
                    np_shape_text(&a.shape),
                    np_shape_text(&shape)
                ),
                c.span,
            )),
        }
    }
}

/// `a − b` for sizes that are multiples of one product of dimensions (`2*H − H = H`).
fn dim_minus(a: &Dim, b: &Dim) -> Option<Dim> {
    if b.as_size() == Some(0) {
        return Some(a.clone());
    }
    (a.factors() == b.factors() && a.coeff() > b.coeff()).then(|| with_coeff(a, a.coeff() - b.coeff()))
}

/// `a / b` when it is a whole size or a dimension (`4*H / H = 4`, `N / 1 = N`).
fn dim_ratio(a: &Dim, b: &Dim) -> Option<Dim> {
    if b.coeff() == 0 || !a.coeff().is_multiple_of(b.coeff()) {
        return None;
    }
    divide(a, std::slice::from_ref(b)).filter(|_| b.coeff() > 0)
}

fn with_coeff(d: &Dim, coeff: u64) -> Dim {
    d.factors()
        .iter()
        .fold(Dim::size(coeff), |acc, f| acc.times(&Dim::named(f)))
}

/// Whether an assignment target is names only (`acc`, `a, b`), which can hold an unread value.
fn only_names(target: &Expr) -> bool {
    match &target.kind {
        ExprKind::Name(_) => true,
        ExprKind::Tuple(items) | ExprKind::List(items) => items.iter().all(only_names),
        _ => false,
    }
}

fn poison_names(target: &Expr, poison: &Value, scope: &mut Scope) {
    match &target.kind {
        ExprKind::Name(n) => {
            scope.insert(n.clone(), poison.clone());
        }
        ExprKind::Tuple(items) | ExprKind::List(items) => items.iter().for_each(|t| poison_names(t, poison, scope)),
        _ => {}
    }
}

/// Counts the names an assignment target assigns (a label-indexed entry reassigns its array).
fn count_assigned(target: &Expr, counts: &mut HashMap<String, usize>) {
    match &target.kind {
        ExprKind::Name(n) => *counts.entry(n.clone()).or_insert(0) += 1,
        ExprKind::Tuple(items) | ExprKind::List(items) => items.iter().for_each(|t| count_assigned(t, counts)),
        ExprKind::Subscript(base, _) => count_assigned(base, counts),
        _ => {}
    }
}

/// `total` divided by the product of `others`, when it divides exactly.
fn divide(total: &Dim, others: &[Dim]) -> Option<Dim> {
    let mut factors: Vec<&str> = total.factors();
    let mut coeff = total.coeff();
    for d in others {
        if d.coeff() == 0 || !coeff.is_multiple_of(d.coeff()) {
            return None;
        }
        coeff /= d.coeff();
        for f in d.factors() {
            let pos = factors.iter().position(|g| *g == f)?;
            factors.remove(pos);
        }
    }
    Some(
        factors
            .iter()
            .fold(Dim::size(coeff), |acc, f| acc.times(&Dim::named(f))),
    )
}

fn dim_of(v: &Value) -> Option<Dim> {
    match v {
        Value::Dim(d) => Some(d.clone()),
        Value::Number { value, integer: true } if *value >= 1.0 => Some(Dim::size(*value as u64)),
        _ => None,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// A numeric literal (possibly negated): a parameter's constant default.
/// Whether a constant parameter's default is written as a real number (`eps=1e-5`,
/// `reg=0.0`): a constant of the layer, kept by its name in the formulas (the user's name,
/// and a backward function right for any value passed). A whole number (`k=2`, `C=10`) may
/// be a size, an axis or a power, and is read as the number.
pub fn kept_by_name(default: &str) -> bool {
    default.contains(['.', 'e', 'E']) && !default.contains(['"', '\''])
}

pub fn constant_of(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Number { value, .. } => Some(*value),
        ExprKind::Neg(a) => constant_of(a).map(|v| -v),
        _ => None,
    }
}

/// The matdiff name of a numpy elementwise function that is one node of the IR.
fn elementwise_by_numpy_name(name: &str) -> Option<&'static str> {
    let matdiff_name = match name {
        "absolute" => "abs",
        other => other,
    };
    // Functions of one argument only (`leaky_relu` takes its slope too).
    let probe = Id::from(0usize);
    crate::ir::ELEMENTWISE
        .iter()
        .copied()
        .find(|f| *f == matdiff_name && Math::elementwise(f, probe).is_some())
}

/// A numpy call's arguments, positional and keyword, read by name.
struct Call {
    name: String,
    args: Vec<(Value, Span)>,
    kwargs: Vec<(String, Value, Span)>,
    span: Span,
    fspan: Span,
}

impl Call {
    fn keyword(&self, k: &str) -> Option<&(String, Value, Span)> {
        self.kwargs.iter().find(|(n, _, _)| n == k)
    }

    fn get(&self, index: usize, keyword: &str) -> Option<(Value, Span)> {
        self.args
            .get(index)
            .cloned()
            .or_else(|| self.keyword(keyword).map(|(_, v, s)| (v.clone(), *s)))
    }

    fn missing(&self, keyword: &str) -> Error {
        Error::name(
            format!(
                "`{}` is missing its argument `{keyword}`",
                self.name.replace("method.", "")
            ),
            self.span,
        )
    }

    fn array(&self, it: &mut Interpreter, index: usize, keyword: &str) -> Result<Arr, Error> {
        let (v, span) = self.get(index, keyword).ok_or_else(|| self.missing(keyword))?;
        it.to_arr(v, span)
    }

    fn number(&self, index: usize, keyword: &str) -> Result<f64, Error> {
        match self.get(index, keyword) {
            Some((Value::Number { value, .. }, _)) => Ok(value),
            Some((_, span)) => Err(Error::unsupported(format!("`{keyword}` must be a number"), span)),
            None => Err(self.missing(keyword)),
        }
    }

    fn size(&self, it: &mut Interpreter, index: usize) -> Result<Dim, Error> {
        let (v, span) = self.get(index, "N").ok_or_else(|| self.missing("N"))?;
        let _ = it;
        dim_of(&v).ok_or_else(|| Error::shape("a size must be a dimension or a positive integer", span))
    }

    fn shape_arg(&self, it: &mut Interpreter, index: usize) -> Result<NpShape, Error> {
        let (v, span) = self.get(index, "shape").ok_or_else(|| self.missing("shape"))?;
        let _ = it;
        let items = match v {
            Value::Tuple(vs) => vs,
            v => vec![v],
        };
        if items.len() > 2 {
            return Err(Error::unsupported("matdiff's arrays have at most two axes", span));
        }
        items
            .iter()
            .map(|v| dim_of(v).ok_or_else(|| Error::shape("a size must be a dimension or a positive integer", span)))
            .collect()
    }

    fn axis(&self, _it: &mut Interpreter, a: &Arr, index: usize) -> Result<Option<usize>, Error> {
        let n = a.shape.len() as i64;
        let one = |value: f64, span: Span| -> Result<usize, Error> {
            let k = value as i64;
            let k = if k < 0 { k + n } else { k };
            if k < 0 || k >= n.max(1) {
                return Err(Error::shape(
                    format!("axis {value} is out of bounds for an array of dimension {n}"),
                    span,
                ));
            }
            Ok(k as usize)
        };
        match self.get(index, "axis") {
            None | Some((Value::NoneV, _)) => Ok(None),
            Some((Value::Number { value, integer: true }, span)) => one(value, span).map(Some),
            // `axis=(0, 1)`: a reduction over every axis is the whole array's; over one, that axis's.
            Some((Value::Tuple(items), span)) => {
                let mut axes = BTreeSet::new();
                for item in &items {
                    match item {
                        Value::Number { value, integer: true } => {
                            if !axes.insert(one(*value, span)?) {
                                return Err(Error::shape("duplicate value in `axis`", span));
                            }
                        }
                        _ => return Err(Error::unsupported("`axis` must be integers (or None)", span)),
                    }
                }
                match axes.len() {
                    0 => Err(Error::unsupported("an empty `axis` tuple reduces nothing", span)),
                    k if k == a.shape.len() => Ok(None),
                    _ => Ok(axes.first().copied()),
                }
            }
            Some((_, span)) => Err(Error::unsupported("`axis` must be an integer (or None)", span)),
        }
    }

    /// `np.stack`'s axis for 1-D arrays: 0 (rows) or 1 (columns, also -1).
    fn axis_of_stack(&self) -> Result<usize, Error> {
        match self.get(1, "axis") {
            None | Some((Value::Number { value: 0.0, .. }, _)) => Ok(0),
            Some((Value::Number { value: 1.0 | -1.0, .. }, _)) => Ok(1),
            Some((_, span)) => Err(Error::unsupported("`np.stack` of 1-D arrays takes axis 0 or 1", span)),
        }
    }

    fn flag(&self, keyword: &str) -> Result<bool, Error> {
        match self.keyword(keyword) {
            None => Ok(false),
            Some((_, Value::Bool(b), _)) => Ok(*b),
            Some((_, _, span)) => Err(Error::unsupported(format!("`{keyword}` must be True or False"), *span)),
        }
    }
}

/// Labels index an array's columns: its classes must be the array's columns (`y: "N labels
/// of C"` picks from an `N x C` array), as numpy would raise for a label out of range.
fn labels_fit(labels: &Value, shape: &[Dim], span: Span) -> Result<(), Error> {
    let Value::Labels { name, n, c, .. } = labels else {
        return Ok(());
    };
    if let [_, cols] = shape {
        if cols == c {
            return Ok(());
        }
    }
    Err(Error::shape(
        format!(
            "the labels `{name}` ({} labels of {}) pick one of {} columns, but the array is {}",
            n.render("*"),
            c.render("*"),
            c.render("*"),
            np_shape_text(shape)
        ),
        span,
    ))
}
