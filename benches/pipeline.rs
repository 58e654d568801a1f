//! Criterion benchmarks of each stage of the pipeline, on the seed example and on
//! every corpus case (`tests/cases/*.toml`), grouped by case id:
//!
//! - `parse+shape`: `check_script` (parse, shape inference and check, lowering);
//! - `derive+simplify`: `grad_checked` with `no_check` on the already checked script;
//! - `check`: the numeric check alone (`numeric::check`) on the derived formula;
//! - `end-to-end`: `grad` with the check, as the CLI runs it.
//!
//! `cargo bench --bench pipeline` (a filter narrows it: `-- seed`).

mod common;

use common::Case;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use std::hint::black_box;
use std::time::Duration;

fn cases() -> Vec<Case> {
    let mut all = vec![Case {
        id: "seed".into(),
        script: common::SEED_SCRIPT.into(),
        wrt: common::SEED_WRT.into(),
        layout: None,
    }];
    all.extend(common::corpus());
    all
}

fn pipeline(c: &mut Criterion) {
    for case in cases() {
        let no_check = common::options(&case, true);
        let full = common::options(&case, false);
        // A case the engine rejects is reported and skipped, not benchmarked.
        let checked = match matdiff::check_script(&case.script) {
            Ok(checked) => checked,
            Err(e) => {
                eprintln!("{}: skipped, check_script failed: {e:?}", case.id);
                continue;
            }
        };
        let derivation = match matdiff::grad_checked(&checked, &case.wrt, &no_check) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: skipped, grad failed: {e:?}", case.id);
                continue;
            }
        };
        if let Some(limit) = &derivation.simplify.limit_hit {
            eprintln!("{}: simplification stopped by a limit: {limit}", case.id);
        }

        // The seed gets a full second per stage; the corpus (200+ cases x 4 stages) a
        // short window each, so the whole run stays within minutes on 2 cores.
        let (warm_up, measure) = if case.id == "seed" {
            (Duration::from_millis(500), Duration::from_secs(2))
        } else {
            (Duration::from_millis(50), Duration::from_millis(250))
        };
        let mut group = c.benchmark_group(case.id.as_str());
        // Flat sampling: a slow case (an e-graph run that hits a limit) costs 10 runs, not 55.
        group
            .sample_size(10)
            .warm_up_time(warm_up)
            .measurement_time(measure)
            .sampling_mode(SamplingMode::Flat);
        group.bench_function(BenchmarkId::from_parameter("parse+shape"), |b| {
            b.iter(|| matdiff::check_script(black_box(&case.script)).unwrap())
        });
        group.bench_function(BenchmarkId::from_parameter("derive+simplify"), |b| {
            b.iter(|| matdiff::grad_checked(black_box(&checked), &case.wrt, &no_check).unwrap())
        });
        group.bench_function(BenchmarkId::from_parameter("check"), |b| {
            b.iter(|| common::check(black_box(&derivation)))
        });
        group.bench_function(BenchmarkId::from_parameter("end-to-end"), |b| {
            b.iter(|| matdiff::grad_with(black_box(&case.script), &case.wrt, &full).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
