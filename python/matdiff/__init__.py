"""matdiff in Python: symbolic matrix calculus, checked numerically, shown in the notebook.

>>> d = grad("X : B x N; W : N x M; b : M; X*W + b", "b")
>>> d.formula
'Gᵀ·1_B'
>>> d.check.passed
True

Every object prints as the CLI does (``str``) and renders as LaTeX in Jupyter
(``_repr_latex_``). Bad input raises :class:`Error`, a ``ValueError`` whose message points
at the place (line, column, caret). The work is done by the Rust library (``matdiff._matdiff``).
"""

from __future__ import annotations

import inspect
import json
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from . import _matdiff
from ._matdiff import Error

__all__ = [
    "Backward",
    "Check",
    "Derivation",
    "Error",
    "Explanation",
    "FullForm",
    "backward",
    "explain",
    "grad",
    "hessian",
    "jacobian",
]

Layout = Literal["denominator", "numerator"]


@dataclass(frozen=True)
class Check:
    """The numeric check against finite differences: its verdict and its sentence."""

    status: str
    """``passed``, ``failed``, ``no_domain``, ``too_large`` or ``unchecked``."""
    instances: int | None
    max_rel_err: float | None
    text: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        return self.text

    @staticmethod
    def _from(data: dict[str, Any]) -> Check:
        return Check(data["status"], data.get("instances"), data.get("max_rel_err"), data["text"])


class _Shown:
    """A result that prints as the CLI does and renders as LaTeX in Jupyter."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __str__(self) -> str:
        return str(self._data["text"])

    # The text is the most useful plain representation (a REPL, a notebook without MathJax).
    def __repr__(self) -> str:
        return str(self)

    def _repr_latex_(self) -> str:
        return str(self._data["display_latex"])


class _Formula(_Shown):
    """A result with a formula, checked numerically."""

    @property
    def formula(self) -> str:
        """The result as text: ``'Gᵀ·1_B'`` (a gradient, with the script's definitions as
        names), ``'1_B ⊗ I_M'`` (a Jacobian)."""
        return str(self._data["formula"])

    @property
    def latex(self) -> str:
        """The result as LaTeX: ``'G^\\top \\mathbf{1}_{B}'``."""
        return str(self._data["latex"])

    @property
    def check(self) -> Check:
        return Check._from(self._data["check"])


class Derivation(_Formula):
    """A gradient (or the backprop of ``G`` through a non-scalar target), simplified and checked."""

    @property
    def numpy(self) -> str:
        """One numpy expression over ``np``, the script's names, its dimensions and ``G``."""
        return str(self._data["numpy"])

    @property
    def wrt(self) -> str:
        return str(self._data["wrt"])

    @property
    def layout(self) -> str:
        return str(self._data["layout"])

    @property
    def shape(self) -> str:
        """The result's shape, as the script writes shapes (``'M'``, ``'N x M'``)."""
        return str(self._data["shape"])

    @property
    def upstream(self) -> str | None:
        """The upstream gradient's name (``'G'``) for a non-scalar target, else None."""
        upstream = self._data["upstream"]
        return None if upstream is None else str(upstream["name"])

    def function(self, **arrays: Any) -> Any:
        """Evaluates the numpy expression on these arrays (and ``G``), by name.

        Each dimension is read from the shape of an array declared with it; a dimension no
        array shows can be given as an integer (``K=3``). Shapes are checked against the
        script's declarations. Vectors are 1-D arrays, scalars numbers.
        """
        import numpy as np

        declared: dict[str, list[dict[str, Any]]] = self._data["arrays"]
        dims: set[str] = set(self._data["dims"])
        unknown = sorted(set(arrays) - set(declared) - dims)
        if unknown:
            raise TypeError(
                f"{', '.join(unknown)}: not an array of the script (its arrays: {', '.join(declared)})"
            )
        sizes: dict[str, int] = {k: int(v) for k, v in arrays.items() if k in dims and k not in declared}
        namespace: dict[str, Any] = {"np": np}
        given: list[tuple[str, Any, list[dict[str, Any]], tuple[int, ...]]] = []
        for name, value in arrays.items():
            axes = declared.get(name)
            if axes is None:
                continue
            if not axes:
                namespace[name] = float(value)
                continue
            array = np.asarray(value, dtype=float)
            namespace[name] = array
            shape = _axes_of(name, array, axes)
            given.append((name, array, axes, shape))
            for axis, size in zip(axes, shape):
                factors = axis["factors"]
                if axis["coeff"] == 1 and len(factors) == 1:
                    sizes.setdefault(factors[0], size)
        # Only now is every dimension bound, so products (2·n, n·m) can be checked too.
        for name, array, axes, shape in given:
            expected = [_size(axis, sizes) for axis in axes]
            if any(e is not None and e != s for e, s in zip(expected, shape)):
                raise ValueError(
                    f"{name} has shape {array.shape}, but the script declares {name} : {_shape_text(axes)}"
                    f" (with {_bindings(sizes)})"
                )
        namespace.update(sizes)
        try:
            return eval(self._compiled(), namespace)  # noqa: S307 (matdiff's own numpy expression)
        except NameError as e:
            raise TypeError(f"the gradient needs `{e.name}`: pass it as {e.name}=...") from None

    def _compiled(self) -> Any:
        code = self._data.get("_code")
        if code is None:
            code = self._data["_code"] = compile(self.numpy, f"<∂/∂{self.wrt}>", "eval")
        return code


def _axes_of(name: str, array: Any, axes: list[dict[str, Any]]) -> tuple[int, ...]:
    """The sizes of an array along its declared axes: a vector may be (n,) or (n, 1)."""
    if len(axes) == 1:
        if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
            return (array.shape[0],)
    elif array.ndim == 2:
        return tuple(array.shape)
    raise ValueError(f"{name} has shape {array.shape}, but the script declares {name} : {_shape_text(axes)}")


def _size(axis: dict[str, Any], sizes: dict[str, int]) -> int | None:
    if any(f not in sizes for f in axis["factors"]):
        return None
    return int(axis["coeff"]) * math.prod(sizes[f] for f in axis["factors"])


def _shape_text(axes: list[dict[str, Any]]) -> str:
    def dim(axis: dict[str, Any]) -> str:
        parts = ([str(axis["coeff"])] if axis["coeff"] != 1 or not axis["factors"] else []) + axis["factors"]
        return "·".join(parts)

    return " x ".join(dim(a) for a in axes)


def _bindings(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sorted(sizes.items())) or "no dimensions bound"


class FullForm(_Formula):
    """A Jacobian or Hessian as a matrix over vec, its index form and nonzeros, checked."""


class Explanation(_Shown):
    """The derivative three ways (per example, chain rule step by step, full Jacobian)."""

    @property
    def latex(self) -> str:
        """The chain-rule steps as an ``align*`` body."""
        return str(self._data["latex"])

    @property
    def all_checked(self) -> bool:
        """Every step, the per-example sum and the full form agreed with finite differences."""
        return bool(self._data["all_checked"])

    @property
    def result(self) -> Derivation:
        return Derivation(self._data["result"])


def grad(
    script: str, wrt: str, layout: Layout = "denominator", *, check: bool = True, seed: int | None = None
) -> Derivation:
    """∂f/∂wrt for a scalar target, or the backprop of ``G`` through a non-scalar one.

    ``layout="numerator"`` gives the transpose; ``check=False`` skips the numeric check;
    ``seed`` seeds its random instances.
    """
    return Derivation(json.loads(_matdiff.grad(script, wrt, layout, check, seed)))


def jacobian(script: str, wrt: str, *, check: bool = True, seed: int | None = None) -> FullForm:
    """The full form ∂vec(T)/∂vec(wrt) of the target T (vec row by row, as numpy's ravel)."""
    return FullForm(json.loads(_matdiff.full(script, wrt, "jacobian", check, seed)))


def hessian(script: str, wrt: str, *, check: bool = True, seed: int | None = None) -> FullForm:
    """The Hessian ∂vec(∇f)/∂vec(wrt) of a scalar target."""
    return FullForm(json.loads(_matdiff.full(script, wrt, "hessian", check, seed)))


def explain(
    script: str, wrt: str, layout: Layout = "denominator", *, check: bool = True, seed: int | None = None
) -> Explanation:
    """The derivative three ways, every step checked, as ``matdiff explain``."""
    return Explanation(json.loads(_matdiff.explain(script, wrt, layout, check, seed)))


class Backward(_Shown):
    """The backward pass of a Python forward function: every gradient, checked, and the numpy
    function computing them. Calling it calls that function: ``dx, dw, db = bw(dout, x, w, b)``
    (a scalar loss takes no upstream)."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        namespace: dict[str, Any] = {}
        exec(compile(self.python, f"<{self.name}>", "exec"), namespace)  # noqa: S102 (matdiff's own code)
        self._function: Callable[..., Any] = namespace[self.name]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    @property
    def function(self) -> Callable[..., Any]:
        """The compiled backward function (its source is :attr:`python`)."""
        return self._function

    @property
    def name(self) -> str:
        """The backward function's name: ``affine_backward`` for ``affine_forward``."""
        return str(self._data["backward_name"])

    @property
    def python(self) -> str:
        """The backward function's source (numpy imported as ``np``)."""
        return str(self._data["python"])

    @property
    def latex(self) -> str:
        """The target and every gradient as an ``align*`` body."""
        return str(self._data["latex"])

    @property
    def upstreams(self) -> list[str]:
        """The upstream gradients it takes first (``['dout']``); none for a scalar loss."""
        return list(self._data["upstreams"])

    @property
    def params(self) -> list[str]:
        """The forward function's parameters, which it takes after the upstreams."""
        return list(self._data["params"])

    @property
    def wrt(self) -> list[str]:
        return list(self._data["wrt"])

    @property
    def gradients(self) -> list[Derivation]:
        """One derivation per name in :attr:`wrt`, in that order."""
        return [Derivation(g) for g in self._data["gradients"]]

    @property
    def all_checked(self) -> bool:
        return bool(self._data["all_checked"])


def backward(
    fn: Callable[..., Any] | str,
    wrt: str | list[str] | None = None,
    *,
    check: bool = True,
    seed: int | None = None,
) -> Backward:
    """The backward pass of a numpy forward function, read from its source.

    Its array parameters are annotated with their shapes (``x: "N x D"``, ``b: "M"``). ``fn``
    may also be Python source text, whose last function is then the forward pass. ``wrt`` is
    a parameter's name or a list of them; by default every annotated parameter.
    """
    if isinstance(fn, str):
        source, function, source_name = fn, None, "<source>"
    else:
        # The function as written, indented or not (a method, a function in a function).
        try:
            source = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as e:
            raise Error(f"cannot read the source of {fn!r} ({e}): pass its source text instead") from e
        function, source_name = fn.__name__, f"<{fn.__qualname__}>"
    names = [wrt] if isinstance(wrt, str) else wrt
    return Backward(json.loads(_matdiff.backward(source, source_name, function, names, check, seed)))
