"""Static analysis of expressions: which results, variables, resources they read."""

from __future__ import annotations

import pytest

from millrace.expressions import referenced_resources, referenced_results, referenced_variables
from millrace.expressions.analysis import has_return, strip_windmill_imports


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("results.a.b", {"a"}),
        ("results.a + results.b_2", {"a", "b_2"}),
        ("results?.a", {"a"}),
        ('results["a b"] + results[\'c\']', {"a b", "c"}),
        ('results?.["d"]', {"d"}),
        ("results[`e`]", {"e"}),
        ("flow_input.x", set()),
        ("'results.x' + \"results.y\" + results.z", {"z"}),
        ("results.a // results.hidden", {"a"}),
        ("/* results.hidden */ results.a", {"a"}),
        ("`results.text ${results.a} and ${`${results.b}`}`", {"a", "b"}),
        ("`${ {k: results.a}.k }`", {"a"}),
        ("x.replace(/results.hidden/g, '') + results.a", {"a"}),
        ("results.a / results.b / 2", {"a", "b"}),
        ("obj.results.x + results.a", {"a"}),
        ("({results: 1, a: results.a})", {"a"}),
        ("results.a\n  .b", {"a"}),
        ("import { results } from 'windmill@1-1'\nresults.a", {"a"}),
    ],
)
def test_static_results(expr: str, expected: set[str]) -> None:
    assert referenced_results(expr) == frozenset(expected)


@pytest.mark.parametrize(
    "expr",
    [
        "results[x]",
        "results[0]",
        "results['a' + b]",
        'results["esc\\"aped"]',
        "Object.keys(results)",
        "results",
        "const r = results; r.a",
        "f(results)",
        "({results})",
        "cond ? results : {}",
        "`${results}`",
    ],
)
def test_dynamic_results(expr: str) -> None:
    assert referenced_results(expr) is None


def test_variables_and_resources() -> None:
    expr = "variable('f/a') + variable(\"f/b\") + `${variable(`f/c`)}` + resource('u/r').x"
    assert referenced_variables(expr) == {"f/a", "f/b", "f/c"}
    assert referenced_resources(expr) == {"u/r"}
    assert referenced_variables("'variable(\"f/no\")'") == frozenset()
    assert referenced_variables("obj.variable('x')") == frozenset()
    assert referenced_variables("variable(path)") is None
    assert referenced_resources("resource('a' + b)") is None
    assert referenced_resources("flow_input.x") == frozenset()


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("const a = 1; return a", True),
        ("(() => { return 1 })()", True),
        ("'return 1'", False),
        ("// return\n1", False),
        ("returned + 1", False),
        ("x.return", True),  # conservative: only decides which wrapping is tried second
    ],
)
def test_has_return(expr: str, expected: bool) -> None:
    assert has_return(expr) is expected


def test_strip_windmill_imports() -> None:
    expr = (
        "import { previous_result, flow_input, step, variable,\n  resource, params } "
        "from 'windmill@1-1';\nimport * as wmill from \"windmill-client\"\n\n  flow_input.x  "
    )
    assert strip_windmill_imports(expr) == "flow_input.x"
    assert strip_windmill_imports("import x from 'lodash'\nx") == "import x from 'lodash'\nx"
    assert strip_windmill_imports("flow_input.important") == "flow_input.important"
