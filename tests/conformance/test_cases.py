"""The conformance cases themselves: each loads, names its Windmill source, and is listed in docs/windmill-rules.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cases import Case, all_cases

RULES_PAGE = Path(__file__).resolve().parents[2] / "docs" / "windmill-rules.md"


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.name)
def test_each_case_is_listed_on_the_rules_page_with_its_source(case: Case) -> None:
    line = next((line for line in RULES_PAGE.read_text(encoding="utf-8").splitlines()
                 if f"[`{case.name}`]" in line), None)
    assert line is not None, f"{case.name} is not listed in {RULES_PAGE}"
    assert case.windmill.replace("|", "\\|") in line, f"{RULES_PAGE} does not give {case.name}'s Windmill source"
    if case.example is not None:
        assert case.example_path.is_file(), f"{case.name}: no example {case.example_path}"

