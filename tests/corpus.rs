//! Walks every case file in tests/cases: each case is derived, must match its textbook
//! form (`expect`) when one is given, must pass the numeric check, and is snapshotted.
//! The numpy test (tests/numpy.rs) evaluates the same cases with real numpy.

mod common;

use common::{load_cases, options_for, snapshot_text};

#[test]
fn every_case_derives_its_textbook_form_and_passes_the_check() {
    let mut problems = Vec::new();
    for (file, case) in load_cases() {
        let name = format!("{file}__{}", case.id);
        let d = match matdiff::grad_with(&case.script, &case.wrt, &options_for(&case)) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{name}: error {e}"));
                continue;
            }
        };
        if !d.check.passed() {
            problems.push(format!("{name}: {}", d.check_text()));
        }
        if let Some(expect) = &case.expect {
            if &d.formula_text() != expect {
                problems.push(format!(
                    "{name}: got {} but the textbook form is {expect}",
                    d.formula_text()
                ));
            }
        }
        insta::assert_snapshot!(name, snapshot_text(&d), &case.source);
    }
    assert!(
        problems.is_empty(),
        "{} cases failed:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
