"""The rules listed on docs/compatibility.md point at tests that exist."""

from __future__ import annotations

import ast
from pathlib import Path

from millrace.compat.rules import VALIDATION_RULES

REPO = Path(__file__).resolve().parents[2]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_rule_names_tests_that_exist() -> None:
    for rule in VALIDATION_RULES:
        assert rule.tests, rule
        for reference in rule.tests:
            file, _, name = reference.partition("::")
            assert name in _test_names(REPO / file), reference
