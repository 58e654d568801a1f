//! The equality-saturation loop, searching each rule only where something changed.
//!
//! egg's `Runner` searches every rule over the whole e-graph in every iteration, and
//! applies every match again. Applying a match twice adds nothing, so a rule only needs
//! the matches that involve what changed since it last ran: a rule whose left side
//! reaches `h` levels below its root is searched in the classes that changed and in their
//! ancestors up to `h` levels (its guard reads the classes it binds, which lie within
//! those levels too). The e-graph reached is the one egg's loop reaches; a run that
//! saturates is still a proof that no rule can change anything more.
//!
//! Busy rules are banned for a while as in egg's `BackoffScheduler` (its match limit and
//! ban lengths); a banned rule's matches are dropped, so it searches everything that
//! changed since its last complete search when the ban ends.

use crate::ir::{Math, MathGraph};
use crate::rules::{Compiled, RuleSet};
use crate::simplify::Limits;
use egg::Id;
use rustc_hash::{FxHashMap as HashMap, FxHasher};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::time::Instant;

/// How a run ended.
pub struct Outcome {
    pub iterations: usize,
    /// `None` when the rules saturated.
    pub limit_hit: Option<String>,
}

/// Matches over this in one iteration ban a rule (doubling with every ban), as in egg.
const MATCH_LIMIT: usize = 300;
/// Iterations a first ban lasts (doubling with every ban), as in egg.
const BAN_LENGTH: usize = 5;

#[derive(Default)]
struct RuleState {
    /// The iteration from whose changes on the rule has not searched; `None` before its
    /// first complete search.
    searched_before: Option<usize>,
    times_banned: u32,
    banned_until: usize,
}

/// Runs `rules`, some of the rule set `set`, on the e-graph.
pub fn run(egraph: &mut MathGraph, set: &RuleSet, rules: &[&Compiled], limits: Limits) -> Outcome {
    let start = Instant::now();
    let mut states: Vec<RuleState> = rules.iter().map(|_| RuleState::default()).collect();
    // changed[k]: the classes iteration k changed (new, merged, or with new nodes).
    let mut changed: Vec<Vec<Id>> = Vec::new();
    let mut fingerprints = fingerprint(egraph);
    // The operators the e-graph holds: a rule needing another cannot match, so it is
    // neither searched nor compiled (as if searched in vain).
    let mut present = set.ops(egraph.classes().flat_map(|c| c.nodes.iter()));
    let mut iteration = 0;
    let limit_hit = loop {
        if iteration >= limits.iterations {
            break Some(format!("iteration limit ({})", limits.iterations));
        }
        let (nodes, classes) = (egraph.total_size(), egraph.number_of_classes());
        let mut regions = Regions::default();
        let mut found = Vec::with_capacity(rules.len());
        for (rule, state) in rules.iter().zip(&mut states) {
            if iteration < state.banned_until {
                found.push(Vec::new());
                continue;
            }
            if !rule.may_match(present) {
                state.searched_before = Some(iteration);
                found.push(Vec::new());
                continue;
            }
            let threshold = MATCH_LIMIT << state.times_banned;
            let matches = match state.searched_before {
                None => rule.rewrite().search_with_limit(egraph, threshold + 1),
                Some(since) => {
                    let region = regions.get(egraph, &changed, since, rule.height);
                    search_in(egraph, rule, region, threshold + 1)
                }
            };
            if matches.iter().map(|m| m.substs.len()).sum::<usize>() > threshold {
                state.banned_until = iteration + (BAN_LENGTH << state.times_banned);
                state.times_banned += 1;
                found.push(Vec::new());
            } else {
                state.searched_before = Some(iteration);
                found.push(matches);
            }
        }
        let mut applied = 0;
        let mut over = false;
        // The node limit is checked after every single substitution: one class can hold
        // thousands of matches (a class of zeros equal to every `0·X`), so checking per class
        // let a run end five times past the limit. Per substitution, a run ends at most one
        // right-hand side (and the analysis' constant leaves) past it.
        'apply: for (rule, matches) in rules.iter().zip(&found) {
            for class in matches {
                for subst in &class.substs {
                    let one = egg::SearchMatches {
                        eclass: class.eclass,
                        substs: vec![subst.clone()],
                        ast: class.ast.clone(),
                    };
                    applied += rule.rewrite().apply(egraph, std::slice::from_ref(&one)).len();
                    if egraph.total_size() > limits.nodes {
                        over = true;
                        break 'apply;
                    }
                }
            }
        }
        drop(found);
        crate::simplify::rebuild(egraph);
        iteration += 1;
        if over {
            break Some(format!("node limit ({})", egraph.total_size()));
        }
        let now = fingerprint(egraph);
        changed.push(
            now.iter()
                .filter(|(id, print)| fingerprints.get(id) != Some(print))
                .map(|(id, _)| *id)
                .collect(),
        );
        fingerprints = now;
        present = set.ops(egraph.classes().flat_map(|c| c.nodes.iter()));
        // A guarded rule can add nodes without a union, so sizes are compared too.
        if applied == 0 && egraph.total_size() == nodes && egraph.number_of_classes() == classes {
            let banned: Vec<&mut RuleState> = states.iter_mut().filter(|s| s.banned_until > iteration).collect();
            if banned.is_empty() {
                break None;
            }
            // Nothing else can happen until a ban ends: end the earliest bans now (egg does so too).
            let first = banned.iter().map(|s| s.banned_until).min().unwrap_or(iteration);
            for state in banned {
                state.banned_until -= first - iteration;
            }
        }
        if start.elapsed() > limits.time {
            break Some(format!("time limit ({:.2}s)", start.elapsed().as_secs_f64()));
        }
    };
    Outcome {
        iterations: iteration,
        limit_hit,
    }
}

/// A hash of each class's nodes (canonical and sorted after a rebuild).
fn fingerprint(egraph: &MathGraph) -> HashMap<Id, u64> {
    egraph
        .classes()
        .map(|class| {
            let mut hasher = FxHasher::default();
            class.nodes.hash(&mut hasher);
            (class.id, hasher.finish())
        })
        .collect()
}

fn search_in<'a>(
    egraph: &MathGraph,
    rule: &'a Compiled,
    region: &[Id],
    limit: usize,
) -> Vec<egg::SearchMatches<'a, Math>> {
    let mut out = Vec::new();
    let mut left = limit;
    for &class in region {
        if left == 0 {
            break;
        }
        if !egraph[class].nodes.iter().any(|n| rule.roots(n)) {
            continue;
        }
        if let Some(m) = rule.rewrite().searcher.search_eclass_with_limit(egraph, class, left) {
            left = left.saturating_sub(m.substs.len());
            out.push(m);
        }
    }
    out
}

/// The classes changed since an iteration, with their ancestors up to some height,
/// computed once per iteration for each (iteration, height) the rules ask for.
#[derive(Default)]
struct Regions {
    cache: HashMap<(usize, usize), Vec<Id>>,
}

impl Regions {
    fn get(&mut self, egraph: &MathGraph, changed: &[Vec<Id>], since: usize, height: usize) -> &[Id] {
        self.cache.entry((since, height)).or_insert_with(|| {
            let mut region: BTreeSet<Id> = changed[since.min(changed.len())..]
                .iter()
                .flatten()
                .map(|&id| egraph.find(id))
                .collect();
            let mut frontier: Vec<Id> = region.iter().copied().collect();
            for _ in 0..height {
                let mut next = Vec::new();
                for id in frontier {
                    for parent in egraph[id].parents() {
                        let parent = egraph.find(parent);
                        if region.insert(parent) {
                            next.push(parent);
                        }
                    }
                }
                frontier = next;
            }
            region.into_iter().collect()
        })
    }
}
