//! The operator table: one row per elementwise function, read by every stage.
//!
//! A row gives the function's name and other spellings, whether it takes a constant
//! parameter, its value on one entry (for the evaluator and constant folding), its domain
//! and kinks (for the numeric check), its derivative f′ stated once as a pattern (from which
//! `rules/elementwise.rs` makes both its backprop rule `G ⊙ f′(a)` and its Jacobian rule
//! `diag(vec f′(a))·J`), and its spelling in text, LaTeX and numpy. The IR has one node for
//! all of them, `Math::Fn(Func, args)`, so `Func` is the only enum that lists them: every
//! match on it is exhaustive, and adding a function is adding a row here (and any
//! simplification rule it wants in `rules/elementwise.rs`).
//!
//! The other functions of the language (`tr`, `softmax`, `ones`, …) are listed in
//! [`Builtin`]; each has its own shape rule and lowering, matched exhaustively in
//! `infer.rs` and `lower.rs`.

use crate::render::Prec;
use std::fmt;
use std::str::FromStr;

/// How a notation writes a function.
#[derive(Debug, Clone, Copy)]
pub enum Spelling {
    /// The notation's own call: `name(x)`, `name(x, a)` (LaTeX: `name\left(x\right)`).
    Call(&'static str),
    /// A named operator: LaTeX's `\operatorname{name}\left(x\right)`; elsewhere as `Call`.
    Operator(&'static str),
    /// A template with `$x` (the argument) and `$a` (the parameter), each written at `arg`
    /// precedence; the result binds as `prec`.
    Template(&'static str, Prec, Prec),
}

/// Where the numeric check may evaluate a function, and what it must avoid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Domain {
    /// Every real.
    Real,
    /// Above a bound (`log`: 0, `log1p`: −1).
    Above(f64),
    /// Away from the poles of tan, where finite differences are meaningless.
    AwayFromPoles,
    /// Every real, with a kink at 0 that finite differences must not straddle.
    Kink,
}

/// Whether an entry may be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admits {
    Yes,
    /// Outside the domain: the check draws again.
    Outside,
    /// Too near a kink to difference across: the check draws again.
    NearKink,
}

/// Distance from a kink below which a finite difference may straddle it.
pub const KINK_MARGIN: f64 = 1e-2;

impl Domain {
    pub fn admits(self, x: f64) -> Admits {
        let inside = match self {
            Domain::Real => true,
            Domain::Above(bound) => x > bound,
            Domain::AwayFromPoles => x.cos().abs() > 0.05,
            Domain::Kink if x.abs() < KINK_MARGIN => return Admits::NearKink,
            Domain::Kink => true,
        };
        if inside {
            Admits::Yes
        } else {
            Admits::Outside
        }
    }
}

/// One elementwise function.
#[derive(Debug)]
pub struct Spec {
    /// The name in scripts, in the IR's patterns and in explanations.
    pub name: &'static str,
    /// Other tools' names, accepted in scripts.
    pub aliases: &'static [&'static str],
    /// Whether scripts may call it (`sign` and `step` only appear in derivatives).
    pub callable: bool,
    /// The default of its constant second argument, if it takes one (`leaky_relu(x, a)`).
    pub parameter: Option<f64>,
    /// Its value at x, given the parameter (0 when it takes none).
    pub eval: fn(f64, f64) -> f64,
    pub domain: Domain,
    /// f′ as a pattern over `?a` (the argument), `?e` (f(a) itself) and `?b` (the parameter).
    pub derivative: &'static str,
    /// The identity the derivative rests on, shown by `explain`.
    pub identity: &'static str,
    pub text: Spelling,
    pub latex: Spelling,
    pub numpy: Spelling,
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn signum0(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x.signum()
    }
}

pub fn step(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else {
        0.0
    }
}

/// The IR's `ones` of the argument's shape, as the derivative patterns write it.
macro_rules! ones {
    () => {
        "(ones (rows ?a) (cols ?a))"
    };
}

/// Declares `Func` with one variant per row and the rows in the same order.
macro_rules! functions {
    ($($variant:ident => $spec:expr,)*) => {
        /// An elementwise function: the row of the table it names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Func {
            $($variant,)*
        }

        const SPECS: &[Spec] = &[$($spec,)*];

        impl Func {
            /// Every function, in table order.
            pub const ALL: &'static [Func] = &[$(Func::$variant,)*];
        }
    };
}

use Domain::*;
use Prec::{Atom, Postfix, Power, Product, Sum};
use Spelling::{Call, Operator, Template};

functions! {
    Exp => Spec {
        name: "exp", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.exp(), domain: Real,
        derivative: "?e", identity: "d exp(x) = exp(x) dx",
        text: Call("exp"), latex: Call("\\exp"), numpy: Call("np.exp"),
    },
    Log => Spec {
        name: "log", aliases: &["ln"], callable: true, parameter: None,
        eval: |x, _| x.ln(), domain: Above(0.0),
        derivative: concat!("(./ ", ones!(), " ?a)"), identity: "d log(x) = dx / x",
        text: Call("log"), latex: Call("\\log"), numpy: Call("np.log"),
    },
    Sin => Spec {
        name: "sin", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.sin(), domain: Real,
        derivative: "(cos ?a)", identity: "d sin(x) = cos(x) dx",
        text: Call("sin"), latex: Call("\\sin"), numpy: Call("np.sin"),
    },
    Cos => Spec {
        name: "cos", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.cos(), domain: Real,
        derivative: "(scale -1 (sin ?a))", identity: "d cos(x) = -sin(x) dx",
        text: Call("cos"), latex: Call("\\cos"), numpy: Call("np.cos"),
    },
    Tanh => Spec {
        name: "tanh", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.tanh(), domain: Real,
        derivative: concat!("(+ ", ones!(), " (scale -1 (.* ?e ?e)))"), identity: "d tanh(x) = (1 - tanh²(x)) dx",
        text: Call("tanh"), latex: Call("\\tanh"), numpy: Call("np.tanh"),
    },
    Tan => Spec {
        name: "tan", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.tan(), domain: AwayFromPoles,
        derivative: concat!("(+ ", ones!(), " (.* ?e ?e))"), identity: "d tan(x) = (1 + tan²(x)) dx",
        text: Call("tan"), latex: Call("\\tan"), numpy: Call("np.tan"),
    },
    Sinh => Spec {
        name: "sinh", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.sinh(), domain: Real,
        derivative: "(cosh ?a)", identity: "d sinh(x) = cosh(x) dx",
        text: Call("sinh"), latex: Call("\\sinh"), numpy: Call("np.sinh"),
    },
    Cosh => Spec {
        name: "cosh", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.cosh(), domain: Real,
        derivative: "(sinh ?a)", identity: "d cosh(x) = sinh(x) dx",
        text: Call("cosh"), latex: Call("\\cosh"), numpy: Call("np.cosh"),
    },
    Arctan => Spec {
        name: "arctan", aliases: &["atan"], callable: true, parameter: None,
        eval: |x, _| x.atan(), domain: Real,
        derivative: concat!("(./ ", ones!(), " (+ ", ones!(), " (.* ?a ?a)))"), identity: "d arctan(x) = dx / (1 + x²)",
        text: Call("arctan"), latex: Call("\\arctan"), numpy: Call("np.arctan"),
    },
    Arcsinh => Spec {
        name: "arcsinh", aliases: &["asinh"], callable: true, parameter: None,
        eval: |x, _| x.asinh(), domain: Real,
        derivative: concat!("(./ ", ones!(), " (sqrt (+ ", ones!(), " (.* ?a ?a))))"), identity: "d arcsinh(x) = dx / √(1 + x²)",
        text: Call("arcsinh"), latex: Operator("arcsinh"), numpy: Call("np.arcsinh"),
    },
    Sigmoid => Spec {
        name: "sigmoid", aliases: &["logistic"], callable: true, parameter: None,
        eval: |x, _| sigmoid(x), domain: Real,
        derivative: concat!("(.* ?e (+ ", ones!(), " (scale -1 ?e)))"), identity: "d σ(x) = σ(x)(1 - σ(x)) dx",
        text: Call("σ"), latex: Call("\\sigma"), numpy: Template("np.exp(-np.logaddexp(0, -$x))", Power, Atom),
    },
    Sqrt => Spec {
        name: "sqrt", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.sqrt(), domain: Above(0.0),
        derivative: concat!("(scale 0.5 (./ ", ones!(), " ?e))"), identity: "d √x = dx / (2√x)",
        text: Call("sqrt"), latex: Template("\\sqrt{$x}", Sum, Atom), numpy: Call("np.sqrt"),
    },
    Abs => Spec {
        name: "abs", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.abs(), domain: Kink,
        derivative: "(sign ?a)", identity: "d|x| = sign(x) dx, x ≠ 0",
        text: Template("|$x|", Sum, Atom), latex: Template("\\left|$x\\right|", Sum, Atom), numpy: Call("np.abs"),
    },
    Relu => Spec {
        name: "relu", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.max(0.0), domain: Kink,
        derivative: "(step ?a)", identity: "d max(x, 0) = step(x) dx, x ≠ 0",
        text: Call("relu"), latex: Operator("relu"), numpy: Template("np.maximum($x, 0)", Sum, Atom),
    },
    Sign => Spec {
        name: "sign", aliases: &[], callable: true, parameter: None,
        eval: |x, _| signum0(x), domain: Kink,
        derivative: "(zeros (rows ?a) (cols ?a))", identity: "sign is constant away from 0",
        text: Call("sign"), latex: Operator("sign"), numpy: Call("np.sign"),
    },
    Step => Spec {
        name: "step", aliases: &[], callable: true, parameter: None,
        eval: |x, _| step(x), domain: Kink,
        derivative: "(zeros (rows ?a) (cols ?a))", identity: "step is constant away from 0",
        text: Call("step"), latex: Operator("step"), numpy: Template("np.heaviside($x, 0.0)", Sum, Atom),
    },
    // PyTorch `LeakyReLU(negative_slope=0.01)`: x for x > 0, a·x otherwise.
    LeakyRelu => Spec {
        name: "leaky_relu", aliases: &[], callable: true, parameter: Some(0.01),
        eval: |x, a| if x > 0.0 { x } else { a * x }, domain: Kink,
        derivative: "(+ (step ?a) (scale ?b (step (scale -1 ?a))))",
        identity: "d leaky_relu(x, a) = (step(x) + a·step(−x)) dx, x ≠ 0",
        text: Call("leaky_relu"), latex: Operator("LeakyReLU"),
        numpy: Template("np.where($x > 0, $x, $a * $x)", Power, Atom),
    },
    // Clevert, Unterthiner & Hochreiter 2015, "Fast and Accurate Deep Network Learning by
    // Exponential Linear Units (ELUs)", eq. 1 with α = 1: x for x > 0, eˣ − 1 otherwise.
    Elu => Spec {
        name: "elu", aliases: &[], callable: true, parameter: None,
        eval: |x, _| if x > 0.0 { x } else { x.exp_m1() }, domain: Kink,
        derivative: "(+ (step ?a) (.* (step (scale -1 ?a)) (exp ?a)))",
        identity: "d elu(x) = (step(x) + step(−x)·eˣ) dx, x ≠ 0 (Clevert et al. 2015, eq. 1, α = 1)",
        text: Call("elu"), latex: Operator("ELU"), numpy: Template("np.where($x > 0, $x, np.expm1($x))", Power, Atom),
    },
    // PyTorch `Softsign`: x / (1 + |x|).
    Softsign => Spec {
        name: "softsign", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x / (1.0 + x.abs()), domain: Real,
        derivative: concat!("(.^ (+ ", ones!(), " (abs ?a)) -2)"), identity: "d softsign(x) = dx / (1 + |x|)²",
        text: Call("softsign"), latex: Operator("softsign"), numpy: Template("$x / (1 + np.abs($x))", Power, Product),
    },
    Log1p => Spec {
        name: "log1p", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.ln_1p(), domain: Above(-1.0),
        derivative: concat!("(./ ", ones!(), " (+ ", ones!(), " ?a))"), identity: "d log(1 + x) = dx / (1 + x)",
        text: Call("log1p"), latex: Operator("log1p"), numpy: Call("np.log1p"),
    },
    Expm1 => Spec {
        name: "expm1", aliases: &[], callable: true, parameter: None,
        eval: |x, _| x.exp_m1(), domain: Real,
        derivative: "(exp ?a)", identity: "d (eˣ − 1) = eˣ dx",
        text: Call("expm1"), latex: Operator("expm1"), numpy: Call("np.expm1"),
    },
    // Hendrycks & Gimpel 2016, "Gaussian Error Linear Units (GELUs)", §2: the tanh
    // approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))), as PyTorch's `GELU(approximate='tanh')`.
    Gelu => Spec {
        name: "gelu", aliases: &[], callable: true, parameter: None,
        eval: |x, _| 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * (x + 0.044_715 * x.powi(3))).tanh()),
        domain: Real,
        // u = c·(x + 0.044715x³), c = √(2/π): f′ = ½(1 + tanh u) + ½x(1 − tanh²u)·c·(1 + 0.134145x²).
        derivative: concat!(
            "(+ (scale 0.5 (+ ", ones!(), " (tanh (scale 0.7978845608028654 (+ ?a (scale 0.044715 (.^ ?a 3)))))))",
            " (scale 0.3989422804014327 (.* ?a (.* (+ ", ones!(),
            " (scale -1 (.^ (tanh (scale 0.7978845608028654 (+ ?a (scale 0.044715 (.^ ?a 3))))) 2)))",
            " (+ ", ones!(), " (scale 0.134145 (.^ ?a 2)))))))"
        ),
        identity: "d gelu(x) = (½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)) dx, u = √(2/π)(x + 0.044715x³)",
        text: Call("gelu"), latex: Operator("GELU"),
        numpy: Template("0.5 * $x * (1 + np.tanh(np.sqrt(2 / np.pi) * ($x + 0.044715 * $x ** 3)))", Postfix, Product),
    },
    // Elfwing, Uchibe & Doya 2018 (SiLU); Ramachandran et al. 2017 (swish with β = 1): x·σ(x).
    Silu => Spec {
        name: "silu", aliases: &["swish"], callable: true, parameter: None,
        eval: |x, _| x * sigmoid(x), domain: Real,
        derivative: concat!("(.* (sigmoid ?a) (+ ", ones!(), " (.* ?a (+ ", ones!(), " (scale -1 (sigmoid ?a))))))"),
        identity: "d silu(x) = σ(x)(1 + x(1 − σ(x))) dx",
        text: Call("silu"), latex: Operator("SiLU"), numpy: Template("$x * np.exp(-np.logaddexp(0, -$x))", Power, Product),
    },
}

impl Func {
    pub fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The function a script calls by this name (or one of its aliases).
    pub fn called(name: &str) -> Option<Func> {
        Func::ALL
            .iter()
            .copied()
            .find(|f| f.spec().callable && (f.name() == name || f.spec().aliases.contains(&name)))
    }

    /// How many arguments a script may pass: (least, most).
    pub fn arity(self) -> (usize, usize) {
        match self.spec().parameter {
            Some(_) => (1, 2),
            None => (1, 1),
        }
    }

    /// Its value at `x` with parameter `p`.
    pub fn apply(self, x: f64, p: f64) -> f64 {
        (self.spec().eval)(x, p)
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Func {
    type Err = ();
    /// The IR's name (patterns, `RecExpr` text): the row's name, never an alias.
    fn from_str(s: &str) -> Result<Func, ()> {
        Func::ALL.iter().copied().find(|f| f.name() == s).ok_or(())
    }
}

/// Declares `Builtin` with one variant per function and their names and argument counts.
macro_rules! builtins {
    ($($variant:ident = $name:literal ($min:literal, $max:literal),)*) => {
        /// The functions of the language that are not elementwise: each has its own shape
        /// rule (`infer.rs`) and lowering (`lower.rs`), matched exhaustively there.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Builtin {
            $($variant,)*
        }

        impl Builtin {
            pub const ALL: &'static [Builtin] = &[$(Builtin::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Builtin::$variant => $name,)*
                }
            }

            /// How many arguments it takes: (least, most).
            pub fn arity(self) -> (usize, usize) {
                match self {
                    $(Builtin::$variant => ($min, $max),)*
                }
            }
        }
    };
}

builtins! {
    Ones = "ones" (1, 2),
    Zeros = "zeros" (1, 2),
    Eye = "eye" (1, 1),
    Tr = "tr" (1, 1),
    Det = "det" (1, 1),
    LogDet = "logdet" (1, 1),
    Inv = "inv" (1, 1),
    Diag = "diag" (1, 1),
    Sum = "sum" (1, 1),
    Norm = "norm" (1, 2),
    Kron = "kron" (2, 2),
    Mean = "mean" (1, 1),
    Softmax = "softmax" (1, 1),
    LogSumExp = "logsumexp" (1, 1),
    Softplus = "softplus" (1, 1),
    Dot = "dot" (2, 2),
    Outer = "outer" (2, 2),
    Transpose = "transpose" (1, 1),
    Maximum = "maximum" (2, 2),
    Minimum = "minimum" (2, 2),
    // The full form's notation, so that a printed Jacobian reads back: `vec(X)`, `K_(m,n)`
    // (`commute(m, n)`), `e_(i of m)` (`unit(m, i)`), `blocksum_(m x n)(M)`, and the mask
    // of each row's first maximum `ismax(A)`.
    Vec = "vec" (1, 1),
    Commute = "commute" (2, 2),
    Unit = "unit" (2, 2),
    BlockSum = "blocksum" (3, 3),
    BlockAdd = "blockadd" (3, 3),
    IsMax = "ismax" (1, 1),
}

/// A function a script can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Builtin(Builtin),
    Elementwise(Func),
}

impl Function {
    /// The function of that name (after `syntax`'s synonyms), if there is one.
    pub fn named(name: &str) -> Option<Function> {
        Builtin::ALL
            .iter()
            .find(|b| b.name() == name)
            .map(|b| Function::Builtin(*b))
            .or_else(|| Func::called(name).map(Function::Elementwise))
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::Builtin(b) => b.name(),
            Function::Elementwise(f) => f.name(),
        }
    }

    pub fn arity(self) -> (usize, usize) {
        match self {
            Function::Builtin(b) => b.arity(),
            Function::Elementwise(f) => f.arity(),
        }
    }

    /// Every function a script can call, builtins first.
    pub fn all() -> impl Iterator<Item = Function> {
        let builtins = Builtin::ALL.iter().map(|b| Function::Builtin(*b));
        builtins.chain(
            Func::ALL
                .iter()
                .filter(|f| f.spec().callable)
                .map(|f| Function::Elementwise(*f)),
        )
    }
}

/// The canonical name of a function alias (`ln` → `log`, `swish` → `silu`).
pub fn alias_of(name: &str) -> Option<&'static str> {
    Func::called(name).filter(|f| f.name() != name).map(Func::name)
}
