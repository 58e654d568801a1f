//! Symbolic dimensions and shapes. A dimension is a monomial: a positive integer times
//! a product of named sizes (`B`, `3`, `B·N` for a Kronecker product's rows).

use egg::Symbol;
use smallvec::SmallVec;
use std::cmp::Ordering;
use std::fmt;

/// Interned factors, inline up to two: every e-class carries a shape, so copying one must
/// not allocate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dim {
    coeff: u64,
    /// Sorted by name, with repeats.
    factors: SmallVec<[Symbol; 2]>,
}

impl Ord for Dim {
    /// By coefficient, then factor names (not intern order, which depends on history).
    fn cmp(&self, other: &Dim) -> Ordering {
        self.coeff.cmp(&other.coeff).then_with(|| {
            self.factors
                .iter()
                .map(|f| f.as_str())
                .cmp(other.factors.iter().map(|f| f.as_str()))
        })
    }
}

impl PartialOrd for Dim {
    fn partial_cmp(&self, other: &Dim) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Dim {
    pub fn one() -> Dim {
        Dim::size(1)
    }
    pub fn size(n: u64) -> Dim {
        Dim {
            coeff: n,
            factors: SmallVec::new(),
        }
    }
    pub fn named(name: &str) -> Dim {
        Dim {
            coeff: 1,
            factors: SmallVec::from_slice(&[Symbol::from(name)]),
        }
    }
    pub fn is_one(&self) -> bool {
        self.coeff == 1 && self.factors.is_empty()
    }
    /// The size when no symbol is involved.
    pub fn as_size(&self) -> Option<u64> {
        self.factors.is_empty().then_some(self.coeff)
    }
    pub fn factors(&self) -> Vec<&'static str> {
        self.factors.iter().map(|f| f.as_str()).collect()
    }
    pub fn coeff(&self) -> u64 {
        self.coeff
    }
    pub fn times(&self, other: &Dim) -> Dim {
        let mut factors = self.factors.clone();
        factors.extend(other.factors.iter().copied());
        factors.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Dim {
            coeff: self.coeff.saturating_mul(other.coeff),
            factors,
        }
    }
    /// The dimension that times `d` is this one, if there is one (`4·H` over `H` is `4`).
    pub fn over(&self, d: &Dim) -> Option<Dim> {
        if d.coeff == 0 || !self.coeff.is_multiple_of(d.coeff) {
            return None;
        }
        let mut factors = self.factors.clone();
        for f in &d.factors {
            let at = factors.iter().position(|g| g == f)?;
            factors.remove(at);
        }
        Some(Dim {
            coeff: self.coeff / d.coeff,
            factors,
        })
    }
    /// The size under an assignment of named sizes.
    pub fn evaluate(&self, size_of: &impl Fn(&str) -> usize) -> usize {
        let coeff = usize::try_from(self.coeff).unwrap_or(usize::MAX);
        self.factors
            .iter()
            .fold(coeff, |acc, f| acc.saturating_mul(size_of(f.as_str())))
    }
    /// Writes the dimension with powers for repeated factors (`n²·B`), for people.
    pub fn pretty(&self) -> String {
        const SUPERSCRIPTS: [&str; 10] = ["⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"];
        let mut parts: Vec<String> = Vec::new();
        if self.coeff != 1 || self.factors.is_empty() {
            parts.push(self.coeff.to_string());
        }
        let mut i = 0;
        while i < self.factors.len() {
            let f = &self.factors[i];
            let count = self.factors[i..].iter().take_while(|g| *g == f).count();
            let power: String = if count == 1 {
                String::new()
            } else {
                count
                    .to_string()
                    .chars()
                    .map(|c| SUPERSCRIPTS[c.to_digit(10).unwrap_or(0) as usize])
                    .collect()
            };
            parts.push(format!("{f}{power}"));
            i += count;
        }
        parts.join("·")
    }

    /// Writes the dimension with `sep` between factors.
    pub fn render(&self, sep: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.coeff != 1 || self.factors.is_empty() {
            parts.push(self.coeff.to_string());
        }
        parts.extend(self.factors.iter().map(|f| f.to_string()));
        parts.join(sep)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pretty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    pub rows: Dim,
    pub cols: Dim,
}

impl Shape {
    pub fn new(rows: Dim, cols: Dim) -> Shape {
        Shape { rows, cols }
    }
    pub fn scalar() -> Shape {
        Shape::new(Dim::one(), Dim::one())
    }
    pub fn is_scalar(&self) -> bool {
        self.rows.is_one() && self.cols.is_one()
    }
    pub fn is_column(&self) -> bool {
        self.cols.is_one() && !self.rows.is_one()
    }
    pub fn is_row(&self) -> bool {
        self.rows.is_one() && !self.cols.is_one()
    }
    pub fn is_square(&self) -> bool {
        self.rows == self.cols
    }
    pub fn transposed(&self) -> Shape {
        Shape::new(self.cols.clone(), self.rows.clone())
    }
}

impl fmt::Display for Shape {
    /// `scalar`, `M` (a column vector), `1 x M`, `B x M`: the declaration syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_scalar() {
            write!(f, "scalar")
        } else if self.is_column() {
            write!(f, "{}", self.rows)
        } else {
            write!(f, "{} x {}", self.rows, self.cols)
        }
    }
}
