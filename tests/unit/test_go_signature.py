"""Reading a Go step's parameter names (Windmill: windmill_parser_go parse_go_sig reads main's parameters by name)."""

from __future__ import annotations

import pytest

from millrace.runtime.go_signature import GoSignatureError, parameter_names


@pytest.mark.parametrize("code, names", [
    ("package inner\nfunc main() (interface{}, error) { return nil, nil }", []),
    ("package inner\nfunc main(x int, names []string) (interface{}, error) {}", ["x", "names"]),
    ("package inner\nfunc main(a, b int, m map[string]int, f func(int, int) int) (interface{}, error) {}", ["a", "b", "m", "f"]),
    ("package inner\nfunc main(\n\tx struct{ A, B int },\n\ty *int,\n) (interface{}, error) {}", ["x", "y"]),
])
def test_parameter_names_in_order(code: str, names: list[str]) -> None:
    assert parameter_names(code) == names


@pytest.mark.parametrize("code, needle", [
    ("package inner\nfunc other() {}", "no `func main"),
    ("package inner\nfunc main(x int", "no closing parenthesis"),
    ("package inner\nfunc main([]int) (interface{}, error) {}", "give every parameter a name"),
])
def test_unreadable_signatures_are_refused(code: str, needle: str) -> None:
    with pytest.raises(GoSignatureError, match=needle.replace("(", r"\(")):
        parameter_names(code)
