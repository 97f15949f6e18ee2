"""Sandboxed JavaScript expressions: evaluation, errors, limits, isolation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import json
from typing import Any

import pytest
import yaml

from millrace.expressions import (
    Deferred,
    EvalContext,
    ExpressionMemoryError,
    ExpressionRuntimeError,
    ExpressionSyntaxError,
    ExpressionTimeout,
    Sandbox,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "windmill-flows"


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "public-api"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox(timeout_s=0.2, max_memory_bytes=32 * 2**20, fast_path=request.param) as box:
        yield box


def ctx(**kwargs: Any) -> EvalContext:
    base: dict[str, Any] = {
        "flow_input": {"y": 2, "name": "Ada", "Open AI": "k", "iter": {"index": 1, "value": "v"}},
        "results": {"a": {"x": 1, "name": "step a"}, "c": [[1, 2], [3, 4]]},
    }
    return EvalContext(**{**base, **kwargs})


# --- context variables -----------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("flow_input.name", "Ada"),
        ('flow_input["Open AI"]', "k"),
        ("flow_input.iter.value", "v"),
        ("flow_input.iter.index + 1", 2),
        ("results.a.x + flow_input.y", 3),
        ("results.c[1][0]", 3),
        ('results["a"].name', "step a"),
        ("results?.a?.x", 1),
        ("results.missing", None),  # steps not yet run read as undefined
        ("results.missing?.x ?? 'default'", "default"),
        ("Object.keys(results).sort()", ["a", "c"]),  # dynamic access injects all
    ],
)
def test_flow_input_and_results(sandbox: Sandbox, expr: str, expected: Any) -> None:
    assert sandbox.evaluate(expr, ctx()) == expected


def test_previous_result_and_params(sandbox: Sandbox) -> None:
    context = ctx(previous_result={"mentions": [1, 2]}, params={"limit": 5})
    assert sandbox.evaluate("previous_result.mentions.length", context) == 2
    assert sandbox.evaluate("params.limit * 2", context) == 10


def test_previous_result_defaults_to_null(sandbox: Sandbox) -> None:
    assert sandbox.evaluate("previous_result", ctx()) is None


@pytest.mark.parametrize(
    ("name", "value", "expr", "expected"),
    [
        ("result", {"break_while": True}, "result.break_while === true", True),
        ("result", [], "result.length == 0", True),
        ("error", {"name": "E", "message": "m", "step_id": "b"}, "error?.step_id || 'unknown'", "b"),
        ("resume", {"satisfied": "yes"}, 'resume["satisfied"]', "yes"),
        ("resumes", [{"a": 1}, {"a": 2}], "resumes.map(r => r.a)", [1, 2]),
        ("approvers", ["ann", "bob"], "approvers.join(',')", "ann,bob"),
        ("iter", {"index": 3, "value": "x"}, "iter.index", 3),
    ],
)
def test_extra_names(sandbox: Sandbox, name: str, value: Any, expr: str, expected: Any) -> None:
    assert sandbox.evaluate(expr, ctx(extra={name: value})) == expected


def test_extra_names_are_checked() -> None:
    with pytest.raises(ValueError, match="require"):
        ctx(extra={"require": 1})


def test_unbound_extra_name_is_a_reference_error(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionRuntimeError, match="ReferenceError: resume is not defined") as info:
        sandbox.evaluate("resume.verifier", ctx())
    assert info.value.name == "ReferenceError"
    assert info.value.expr == "resume.verifier"


def test_params_unbound_when_none(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionRuntimeError, match="params is not defined"):
        sandbox.evaluate("params.x", ctx())


def test_variables_and_resources(sandbox: Sandbox) -> None:
    context = ctx(
        variables={"f/x/token": "s3cret", "f/x/other": "o"},
        resources={"u/admin/pg": {"host": "db"}},
    )
    assert sandbox.evaluate("variable('f/x/token')", context) == "s3cret"
    assert sandbox.evaluate("`${variable('f/x/token')}`", context) == "s3cret"
    assert sandbox.evaluate('resource("u/admin/pg").host', context) == "db"
    path = "f/x/" + "other"
    assert sandbox.evaluate(f"variable({path!r}.slice(0))", context) == "o"  # dynamic path


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("variable('f/missing')", "ReferenceError: variable not found: f/missing"),
        ("resource('u/missing')", "ReferenceError: resource not found: u/missing"),
        ("variable(42)", "ReferenceError: variable not found: 42"),
    ],
)
def test_missing_variable_or_resource(sandbox: Sandbox, expr: str, message: str) -> None:
    with pytest.raises(ExpressionRuntimeError) as info:
        sandbox.evaluate(expr, ctx(variables={"f/x": "1"}, resources={"u/x": {}}))
    assert str(info.value) == message


def test_only_referenced_values_are_injected(sandbox: Sandbox) -> None:
    class Guarded(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            if key == "secret":
                raise AssertionError("unreferenced result was read")
            return super().__getitem__(key)

    results = Guarded(a=1, secret=2)
    assert sandbox.evaluate("results.a", ctx(results=results)) == 1
    assert sandbox.evaluate("`${results?.a}${results['zz']}`", ctx(results=results)) == "1undefined"


# --- expression forms --------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("`${flow_input.iter.value}`", "v"),
        ("`Hi ${flow_input.name}: ${results.c.map(r => `${r[0]}`).join('')}`", "Hi Ada: 13"),
        (
            "import { previous_result, flow_input, step, variable,\n"
            "resource, params } from 'windmill@1-1'\n\n`${flow_input.iter.value}`",
            "v",
        ),
        ("import * as wmill from \"windmill-client\";\nflow_input.y", 2),
        ("const z = results.a.x;\nreturn z + 1", 2),
        ("if (flow_input.y > 1) { return 'big' }\nreturn 'small'", "big"),
        ("(() => {\n  const v = 1;\n  return v + 1;\n})()\n", 2),  # `return` nested, still an expression
        ("{a: 1, b: flow_input.y}", {"a": 1, "b": 2}),
        ("({west: 1})", {"west": 1}),
        ("{ return 5 }", 5),
        ("results.a.x;", 1),
        ("results.a.x // trailing comment", 1),
        ("let result = 1; return result", 1),  # may shadow a context name
        ("[\n  'nation',\n  'region'\n]", ["nation", "region"]),
        ("true  ", True),
        ("", None),
        ("undefined", None),
        ("[1, undefined, () => 1]", [1, None, None]),
        ("({a: undefined, b: 1})", {"b": 1}),
        ("new Date(0)", "1970-01-01T00:00:00.000Z"),
        ("NaN", None),
        ("'return ' + flow_input.name", "return Ada"),  # `return` in a string is text
    ],
)
def test_forms(sandbox: Sandbox, expr: str, expected: Any) -> None:
    assert sandbox.evaluate(expr, ctx()) == expected


def test_body_without_return_is_none_unless_it_throws(sandbox: Sandbox) -> None:
    assert sandbox.evaluate("let x = 1; x++", ctx()) is None
    assert sandbox.evaluate("const x = 1;", ctx()) is None
    with pytest.raises(ExpressionRuntimeError, match="Error: boom"):
        sandbox.evaluate("throw new Error('boom')", ctx())


# --- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("results.a +", "SyntaxError: Unexpected token '}'"),  # V8 closes the function
        ("flow_input.y y", "SyntaxError: Unexpected identifier 'y'"),
        ("return (", "SyntaxError: Unexpected token '}'"),
        ("await variable('x')", "SyntaxError"),
    ],
)
def test_syntax_errors_at_compile_time(sandbox: Sandbox, expr: str, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        sandbox.check(expr)
    assert str(info.value).startswith(message)
    assert info.value.expr == expr
    with pytest.raises(ExpressionSyntaxError):
        sandbox.evaluate(expr, ctx())


@pytest.mark.parametrize(
    ("expr", "name", "message"),
    [
        ("(() => { throw new Error('boom') })()", "Error", "Error: boom"),
        ("(() => { throw new RangeError('r') })()", "RangeError", "RangeError: r"),
        ("(() => { throw 'plain' })()", "Uncaught", "Uncaught: plain"),
        ("(() => { throw {code: 7} })()", "Uncaught", 'Uncaught: {"code":7}'),
        ("nope + 1", "ReferenceError", "ReferenceError: nope is not defined"),
        ("stepresult == undefined", "ReferenceError", "ReferenceError: stepresult is not defined"),
        ("results.missing.x", "TypeError", "TypeError: Cannot read properties of undefined (reading 'x')"),
        ("(function f() { return f() })()", "RangeError", "RangeError: Maximum call stack size exceeded"),
        ("({a: 1n})", "TypeError", "TypeError: Do not know how to serialize a BigInt"),
    ],
)
def test_runtime_errors(sandbox: Sandbox, expr: str, name: str, message: str) -> None:
    with pytest.raises(ExpressionRuntimeError) as info:
        sandbox.evaluate(expr, ctx())
    assert info.value.name == name
    assert str(info.value) == message


def test_infinite_loop_stops_and_sandbox_stays_usable(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionTimeout, match="did not finish within 0.2 s"):
        sandbox.evaluate("while (true) {}", ctx())
    assert sandbox.evaluate("results.a.x + flow_input.y", ctx()) == 3
    with pytest.raises(ExpressionTimeout):
        sandbox.evaluate("(() => { for (;;) {} })()", ctx())
    assert sandbox.evaluate("1 + 1", ctx()) == 2


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "public-api"])
def test_memory_bomb_stops_and_sandbox_stays_usable(fast_path: bool) -> None:
    # A generous time limit: on a busy machine the bomb must hit memory first, not time.
    with Sandbox(timeout_s=30, max_memory_bytes=32 * 2**20, fast_path=fast_path) as sandbox:
        assert sandbox.evaluate("flow_input.y", ctx()) == 2  # compiled before the bomb
        bomb = "(() => { const a = []; for (;;) a.push(new Array(1e6).fill(1.5)) })()"
        with pytest.raises(ExpressionMemoryError, match="memory limit"):
            sandbox.evaluate(bomb, ctx())
        assert sandbox.evaluate("flow_input.y", ctx()) == 2  # recompiled in a fresh isolate
        assert sandbox.evaluate("results.a.x", ctx()) == 1


def test_promises_are_rejected(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionRuntimeError, match="returned a Promise"):
        sandbox.evaluate("Promise.resolve(1)", ctx())


# --- isolation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["require", "process", "Deno", "fetch", "setTimeout", "WebAssembly", "module", "Buffer", "XMLHttpRequest"],
)
def test_no_host_apis(sandbox: Sandbox, name: str) -> None:
    assert sandbox.evaluate(f"typeof {name}", ctx()) == "undefined"
    assert sandbox.evaluate(f"eval('typeof {name}')", ctx()) == "undefined"
    assert sandbox.evaluate(f"Function('return typeof {name}')()", ctx()) == "undefined"


def test_dynamic_import_is_not_available(sandbox: Sandbox) -> None:
    with pytest.raises(ExpressionRuntimeError, match="Promise"):
        sandbox.evaluate("import('fs')", ctx())


def test_no_state_leaks_between_evaluations(sandbox: Sandbox) -> None:
    sandbox.evaluate("(() => { Array.prototype.leak = 1; globalThis.leak = 2; return 0 })()", ctx())
    sandbox.evaluate("(() => { leak2 = 3; JSON.stringify = () => 'x'; return 0 })()", ctx())
    assert sandbox.evaluate("[[].leak, typeof leak, typeof leak2]", ctx()) == [None, "undefined", "undefined"]
    assert sandbox.evaluate("({a: 1})", ctx()) == {"a": 1}
    with pytest.raises(ExpressionRuntimeError, match="read only|not extensible|Cannot"):
        sandbox.evaluate("(() => { 'use strict'; Object.prototype.x = 1 })()", ctx())


def test_context_is_fresh_each_time(sandbox: Sandbox) -> None:
    sandbox.evaluate("(() => { flow_input.y = 100; return 0 })()", ctx())
    assert sandbox.evaluate("flow_input.y", ctx()) == 2


def test_compiled_once_per_expression(sandbox: Sandbox) -> None:
    expr = "results.a.x * 7"
    for _ in range(3):
        assert sandbox.evaluate(expr, ctx()) == 7
    assert sum(1 for key in sandbox._compiled if key[0] == expr) == 1


def test_yaml_dates_in_context_are_iso_strings(sandbox: Sandbox) -> None:
    import datetime

    context = ctx(flow_input={"start": datetime.date(2024, 5, 1)})
    assert sandbox.evaluate("flow_input.start", context) == "2024-05-01"


# --- the corpus --------------------------------------------------------------------


def _corpus_expressions() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def walk(node: Any, flow: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append((flow, value))
                else:
                    walk(value, flow)
        elif isinstance(node, list):
            for item in node:
                walk(item, flow)

    for path in sorted(CORPUS.glob("*/flow.*")):
        if path.suffix in (".yaml", ".json"):
            walk(yaml.load(path.read_text(), Loader=_CorpusLoader), path.parent.name)
    return found


class _CorpusLoader(yaml.SafeLoader):
    """`!inline` tags name script bodies; the expressions don't need them."""


_CorpusLoader.add_constructor("!inline", lambda _loader, node: node.value)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus of Windmill flows not present")
def test_corpus_expressions_compile() -> None:
    expressions = dict.fromkeys(expr for _flow, expr in _corpus_expressions())
    assert len(expressions) > 300
    failures: dict[str, str] = {}
    with Sandbox() as box:
        for expr in expressions:
            try:
                box.check(expr)
            except ExpressionSyntaxError as exc:
                failures[expr] = str(exc)
        assert len(failures) < len(expressions) // 20, failures
        known_good = [
            "import { previous_result, flow_input, step, variable, resource, params }"
            " from 'windmill@1-1'\n\n`${flow_input.iter.value}`",
            "[results.ac[0],results.ac[1],results.ac[2]].some((x)=>x!=\"\")",
            "results?.render_config?.sections ?? []",
            "variable('f/weekly_imports/worksheet_name')",
        ]
        for expr in known_good:
            assert expr in expressions and expr not in failures
        # A `$res:` reference typed as javascript parses as a labelled
        # statement; like an unknown name, it only fails when run.
        for odd, message in [
            ("$res:u/admin/tandoor", "ReferenceError: u is not defined"),
            ("stepresult == undefined", "ReferenceError: stepresult is not defined"),
        ]:
            assert odd in expressions and odd not in failures
            with pytest.raises(ExpressionRuntimeError, match=message):
                box.evaluate(odd, ctx())


# --- member paths, read without V8 -------------------------------------------

PLAIN = {
    "n": 10, "f": 1.5, "whole": 2.0, "negative_zero": -0.0, "big": 1e20, "huge": 1e21, "tiny": 1e-7,
    "unsafe": 2**60, "text": "lone \ud800 surrogate", "nothing": None, "yes": True,
    "ordered": {"b": 1, "10": 2, "a": 3, "2": 4, "01": 5, "4294967295": 6},
    "nested": {"list": [1, 2.0, {"z": 1, "1": 0}], "when": Deferred(lambda: [{"k": 1.0}])},
    "__proto__": {"p": 1}, "s": "abc", "arr": [1, 2],
}
PATHS = ["flow_input.n", "flow_input.f", "flow_input.whole", "flow_input.negative_zero", "flow_input.big",
         "flow_input.huge", "flow_input.tiny", "flow_input.unsafe", "flow_input.text", "flow_input.nothing",
         "flow_input.yes", "flow_input.ordered", "flow_input.nested", "flow_input.nested.list",
         "flow_input.nested.when", "flow_input.__proto__", "flow_input.missing",
         "flow_input.s.length", "flow_input.arr.length", "flow_input.nothing.x", "results.a.x", "results.a",
         "results.missing", "results.c", " flow_input . n ", "resume", "flow_input"]


def _outcome(box: Sandbox, expr: str, context: EvalContext) -> Any:
    try:
        return "value", json.dumps(box.evaluate(expr, context))  # as text: key order and 1 against 1.0 count
    except ExpressionRuntimeError as exc:
        return "error", str(exc).replace(f"({expr})", expr)


@pytest.mark.parametrize("path", PATHS)
def test_a_member_path_read_in_python_is_what_v8_returns(path: str) -> None:
    from millrace.expressions import sandbox as module

    context = ctx(flow_input=PLAIN)
    # With NaN anywhere in the context V8 cannot parse it; the path read in Python fails alike.
    with_nan = ctx(flow_input={**PLAIN, "nan": float("nan")})
    with Sandbox() as box:
        for each in (context, with_nan):
            # Parenthesised, the expression is no member path: V8 evaluates it.
            assert _outcome(box, path, each) == _outcome(box, f"({path})", each)
    found, _ = module._member_value(path, json.dumps({"flow_input": PLAIN, "results": context.results},
                                                     default=module._json_default))
    # Only paths through own keys of objects, to values V8 returns unchanged, are read in Python.
    to_v8 = {"flow_input.unsafe", "flow_input.__proto__", "flow_input.missing", "flow_input.s.length",
             "flow_input.arr.length", "flow_input.nothing.x", "results.missing", "resume", "flow_input"}
    assert found == (path not in to_v8)


def test_a_flow_of_member_paths_starts_no_isolate() -> None:
    with Sandbox() as box:
        assert box.evaluate("flow_input.n", ctx(flow_input={"n": 3})) == 3
        assert box.evaluate("results.a.name", ctx()) == "step a"
        assert box._isolate is None


def test_start_starts_v8_at_once_and_threads_then_start_isolates_of_their_own() -> None:
    """The operator starts V8 once before its handler threads do (cluster/main.py): V8 sets up its
    process-wide state with the first isolate, and two threads doing it at once abort the process.
    Run in a process of its own, so an abort fails this test instead of ending the session."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import threading
        from millrace.expressions import EvalContext, Sandbox
        first = Sandbox()
        first.start()
        assert first._isolate is not None
        results = []
        def evaluate(n):
            with Sandbox() as sandbox:
                results.append(sandbox.evaluate(f"{n} * 2 + [].length", EvalContext(flow_input={})))
        threads = [threading.Thread(target=evaluate, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first.close()
        print(sorted(results))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([n * 2 for n in range(8)])
