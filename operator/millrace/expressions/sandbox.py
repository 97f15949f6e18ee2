"""Evaluate flow expressions in a sandboxed V8 isolate.

Semantics:

- Leading `import ... from 'windmill@...'` lines are dropped.
- An expression is compiled, in order of preference, as `return (<expr>)`
  (so `{a: 1}` is an object literal); then, if it contains a `return`
  keyword, as a function body; otherwise as `return <expr>` (Windmill's own
  wrapping: accepts a trailing semicolon) and last as a body, whose value
  is then None unless it throws (`throw new Error(...)`).
- An empty expression evaluates to None, as in Windmill.
- A member path whose every member is an own key of a JSON object
  (`flow_input.n`, `results.a.b`) is read in Python, with the value V8
  would return: a flow whose expressions are all such paths never starts
  V8. Anything else about such a path (a missing key, `length`, `null.x`)
  is V8's to answer.
- The result is converted through `JSON.stringify`: `undefined`, functions
  and symbols become None, Dates ISO strings, NaN and Infinity None.
- A name the context does not provide (`resume` outside a suspend, a typo)
  raises a ReferenceError; a step id missing from `results` reads as
  `undefined`, as in Windmill (loops read results of steps not yet run).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from millrace.expressions import analysis
from millrace.expressions.errors import (
    ExpressionMemoryError,
    ExpressionRuntimeError,
    ExpressionSyntaxError,
    ExpressionTimeout,
)

if TYPE_CHECKING:
    from millrace.expressions._isolate import Isolate

# Names an `EvalContext.extra` may bind, beyond the ones every expression sees.
EXTRA_NAMES = frozenset({"result", "error", "resume", "resumes", "approvers", "iter", "all_iters"})

_ALL_NAMES = sorted(
    {"flow_input", "results", "previous_result", "params", "variable", "resource"} | EXTRA_NAMES
)
# `flow_input.n`, `results.a.b`: a bound name and member names, which always parse as JavaScript,
# so checking one needs no isolate (most expressions are such paths).
_MEMBER_PATH = re.compile(r"\s*([A-Za-z_]\w*)(?:\s*\.\s*[A-Za-z_$][\w$]*)*\s*")


@dataclass(frozen=True)
class EvalContext:
    """Everything an expression may read. Values must be JSON-serializable.

    `results` may be a lazy mapping: only the step ids an expression names
    are read from it (all of them when the access is dynamic). `variables`
    and `resources` map a path to its value for `variable(path)` and
    `resource(path)`. `params` (the step's already evaluated arguments) is
    bound only when not None; `extra` binds names from `EXTRA_NAMES`.
    """

    flow_input: Mapping[str, Any]
    results: Mapping[str, Any] = field(default_factory=dict)
    previous_result: Any = None
    params: Mapping[str, Any] | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.extra) - EXTRA_NAMES
        if unknown:
            raise ValueError(f"unknown expression context names: {sorted(unknown)}")


@dataclass(frozen=True)
class _Prepared:
    """Per expression text: the candidate bodies and what it references."""

    candidates: tuple[str, ...]
    results: frozenset[str] | None
    variables: frozenset[str] | None
    resources: frozenset[str] | None


def _prepare(expr: str) -> _Prepared:
    source = analysis.strip_windmill_imports(expr)
    block = f"{{\n{source}\n}}"  # a block, so that `let result` may shadow a name
    # The second candidate's SyntaxError is the one reported: it points into
    # the user's text rather than at the parenthesis the first one adds.
    candidates: tuple[str, ...]
    if analysis.has_return(expr):
        candidates = (f"return (\n{source}\n);", block)
    else:
        candidates = (f"return (\n{source}\n);", f"return {source}", block)
    return _Prepared(
        candidates=candidates,
        results=analysis.referenced_results(expr),
        variables=analysis.referenced_variables(expr),
        resources=analysis.referenced_resources(expr),
    )


def _pick(table: Mapping[str, Any], keys: frozenset[str] | None) -> dict[str, Any]:
    if keys is None:
        return dict(table)
    return {key: table[key] for key in keys if key in table}


class Deferred:
    """A context value built only when an expression reads it (a long loop's results so far)."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    def resolve(self) -> Any:
        return self._build()


def _json_default(value: object) -> Any:
    if isinstance(value, Deferred):
        return value.resolve()
    # YAML loads unquoted dates in flow arguments as date objects.
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_MAX_SAFE_INTEGER = 2**53 - 1
_ARRAY_INDEX = re.compile(r"0|[1-9]\d*")


class _NotPlain(Exception):
    """A value that V8 might return changed (a large integer, NaN): V8 evaluates the expression."""


def _member_value(expr: str, payload: str) -> tuple[bool, Any]:
    """A member path (`flow_input.n`, `results.a.b`) read in Python from the JSON context V8 would
    get, so that a flow whose expressions are all such paths never starts V8: (True, value) when
    each member is an own key of a JSON object, the value as V8 returns it. (False, None) for
    anything else -- a missing key, a string's `length`, a name that is not bound, a context V8
    cannot parse -- which V8 answers (undefined, a TypeError, a ReferenceError, a SyntaxError)."""
    if _MEMBER_PATH.fullmatch(expr) is None:
        return False, None
    try:
        value = json.loads(payload, parse_constant=_not_plain)  # NaN, Infinity: not JSON to V8
        for key in (part.strip() for part in expr.split(".")):
            if not isinstance(value, dict) or key == "__proto__" or key not in value:
                return False, None
            value = value[key]
        return True, _as_javascript(value)
    except _NotPlain:
        return False, None


def _not_plain(constant: str) -> Any:
    raise _NotPlain(constant)


def _as_javascript(value: Any) -> Any:
    """A JSON value as `JSON.stringify` of its JavaScript value reads back: numbers are doubles
    (an integral one prints as an integer), integer-like keys of an object come first, ascending."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INTEGER:
            raise _NotPlain
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlain
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, list):
        return [_as_javascript(item) for item in value]
    indexes = sorted((key for key in value if _ARRAY_INDEX.fullmatch(key) and int(key) < 2**32 - 1), key=int)
    if indexes:
        first = set(indexes)
        value = {key: value[key] for key in [*indexes, *(key for key in value if key not in first)]}
    return {key: _as_javascript(item) for key, item in value.items()}


class Sandbox:
    """Compiles and evaluates expressions in one V8 isolate.

    Each distinct expression is parsed once (per set of bound names) and kept
    as a function in the isolate; evaluating it is one call with a JSON
    context. JavaScript has no require, process, Deno, fetch, timers or
    module loading here, and every object reachable from the global scope is
    frozen, so `eval`/`Function` reach nothing but the frozen standard
    library. Each call is limited to `timeout_s`; the isolate's heap to
    `max_memory_bytes`. After memory exhaustion the isolate is replaced and
    expressions are recompiled on demand.

    mini-racer isolates are not safe to share between threads: use one
    Sandbox per thread.
    """

    def __init__(
        self,
        timeout_s: float = 1.0,
        max_memory_bytes: int = 64 * 2**20,
        *,
        fast_path: bool | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_memory_bytes = max_memory_bytes
        self._fast_path = fast_path
        self._isolate: Isolate | None = None
        self._prepared: dict[str, _Prepared] = {}
        self._compiled: dict[tuple[str, tuple[str, ...]], int] = {}

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._isolate is not None:
            self._isolate.close()
        self._isolate = None
        self._compiled.clear()

    def check(self, expr: str) -> None:
        """Compile `expr`; raise ExpressionSyntaxError if it does not parse."""
        path = _MEMBER_PATH.fullmatch(expr)
        if path is not None and path[1] in _ALL_NAMES:
            return
        self._function(expr, self._prepare(expr), tuple(_ALL_NAMES))

    def evaluate(self, expr: str, ctx: EvalContext) -> Any:
        """Evaluate `expr` against `ctx` and return its JSON value."""
        prepared = self._prepare(expr)
        context: dict[str, Any] = {
            "flow_input": ctx.flow_input,
            "results": _pick(ctx.results, prepared.results),
            "previous_result": ctx.previous_result,
            "variables": _pick(ctx.variables, prepared.variables),
            "resources": _pick(ctx.resources, prepared.resources),
            **ctx.extra,
        }
        if ctx.params is not None:
            context["params"] = ctx.params
        payload = json.dumps(context, separators=(",", ":"), default=_json_default)
        found, value = _member_value(expr, payload)
        if found:
            return value
        names = tuple(sorted(name for name in context if name in _ALL_NAMES)) + (
            "variable",
            "resource",
        )
        index = self._function(expr, prepared, names)
        return self._answer(expr, self._call(expr, lambda iso: iso.run(index, payload, self.timeout_s)))

    def _prepare(self, expr: str) -> _Prepared:
        prepared = self._prepared.get(expr)
        if prepared is None:
            prepared = self._prepared[expr] = _prepare(expr)
        return prepared

    def _function(self, expr: str, prepared: _Prepared, names: tuple[str, ...]) -> int:
        key = (expr, names)
        index = self._compiled.get(key)
        if index is None:
            answer = self._call(
                expr,
                lambda iso: iso.compile(
                    list(names), list(prepared.candidates), 1, self.timeout_s
                ),
            )
            index = self._compiled[key] = self._answer(expr, answer, compiling=True)
        return index

    def start(self) -> None:
        """Start V8 now rather than with the first expression that needs it. A process whose threads
        will each start isolates does this once first: V8 sets up its process-wide state with the
        first isolate, and two threads doing that at once abort the process."""
        self._started()

    def _started(self) -> Isolate:
        # V8 is loaded with the first expression that needs it: a command that needs none never starts it.
        from millrace.expressions._isolate import Isolate

        if self._isolate is None:
            self._isolate = Isolate(self.max_memory_bytes, self._fast_path)
        return self._isolate

    def _call(self, expr: str, action: Callable[[Isolate], str]) -> str:
        from millrace.expressions._isolate import IsolateOutOfMemory, IsolateTimeout

        isolate = self._started()
        try:
            return action(isolate)
        except IsolateTimeout:
            raise ExpressionTimeout(
                expr, f"expression did not finish within {self.timeout_s:g} s"
            ) from None
        except IsolateOutOfMemory:
            raise ExpressionMemoryError(
                expr, f"expression exceeded the memory limit of {self.max_memory_bytes} bytes"
            ) from None
        finally:
            if not isolate.usable:
                self.close()

    @staticmethod
    def _answer(expr: str, answer: str, compiling: bool = False) -> Any:
        if not answer.startswith("!"):
            return json.loads(answer)
        error = json.loads(answer[1:])
        if compiling and error["name"] == "SyntaxError":
            raise ExpressionSyntaxError(expr, f"SyntaxError: {error['message']}")
        raise ExpressionRuntimeError(expr, error["name"], error["message"])

