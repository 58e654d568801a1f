//! A reassigned name means what numpy means: each statement sees its latest value, the
//! versions show distinctly (`h_1`, then `h`), and the derivation and the check agree.

fn derive(script: &str, wrt: &str) -> matdiff::Derivation {
    let d = matdiff::grad(script, wrt).expect("the script derives");
    assert!(d.check.passed(), "{d}");
    d
}

#[test]
fn a_definition_redefined_from_itself_is_a_new_version() {
    let d = derive("x : n; h = tanh(x); h = h .* h; sum(h)", "x");
    let shown = d.to_string();
    assert!(shown.contains("where h_1 = tanh(x), h = h_1 ⊙ h_1"), "{shown}");
    assert!(shown.contains("f = sum(h)"), "{shown}");
}

#[test]
fn an_alias_then_a_product_shows_the_product() {
    let d = derive("x : n; y = x; y = y .* x; sum(y)", "x");
    let shown = d.to_string();
    assert!(shown.contains("y = x ⊙ x"), "{shown}");
    assert_eq!(d.formula_text(), "2·x");
}

#[test]
fn an_accumulated_loss_adds_each_term() {
    let d = derive(
        "W : n x n; x : n; loss = sum(W*x); loss = loss + sum(W .* W); loss",
        "W",
    );
    assert!(
        d.to_string().contains("loss_1 = sum(W·x), loss = loss_1 + sum(W ⊙ W)"),
        "{d}"
    );
}
