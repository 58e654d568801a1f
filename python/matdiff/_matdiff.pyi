# The Rust extension: each function returns its result as a JSON string, which the
# package's objects (matdiff.Derivation, ...) wrap.

class Error(ValueError):
    """Bad input; the message is the CLI's, with the line, column and a caret."""

def grad(
    script: str, wrt: str, layout: str = "denominator", check: bool = True, seed: int | None = None
) -> str: ...
def full(script: str, wrt: str, kind: str, check: bool = True, seed: int | None = None) -> str: ...
def explain(
    script: str, wrt: str, layout: str = "denominator", check: bool = True, seed: int | None = None
) -> str: ...
def backward(
    source: str,
    source_name: str,
    function: str | None = None,
    wrt: list[str] | None = None,
    check: bool = True,
    seed: int | None = None,
) -> str: ...
