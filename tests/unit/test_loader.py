"""Reading flows from files: manifests, bare OpenFlow, !inline bodies, bad YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from millrace.errors import FlowError
from millrace.model.loader import load_flow_document, load_flow_file

BARE = """
summary: bare
value:
  modules:
    - id: a
      value:
        type: rawscript
        language: python3
        content: '!inline a.py'
        lock: '!inline a.lock'
        input_transforms: {}
    - id: b
      value:
        type: rawscript
        language: bash
        content: !inline b.sh
        input_transforms: {}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bare_openflow_resolves_inline_bodies_next_to_the_file(tmp_path: Path) -> None:
    write(tmp_path, "x.flow/a.py", "def main(): return 1\n")
    write(tmp_path, "x.flow/b.sh", "echo hi\n")
    loaded = load_flow_file(write(tmp_path, "x.flow/flow.yaml", BARE))
    assert loaded.name == "x"
    assert loaded.flow.value.modules[0].value.content == "def main(): return 1\n"  # type: ignore[union-attr]
    assert loaded.flow.value.modules[1].value.content == "echo hi\n"  # type: ignore[union-attr]
    assert loaded.missing_bodies == []  # a missing lock file is not needed to run


def test_missing_inline_body_is_recorded_not_fatal(tmp_path: Path) -> None:
    loaded = load_flow_file(write(tmp_path, "y__flow/flow.yaml", BARE))
    assert loaded.name == "y"
    assert [(m.step, m.field, m.file) for m in loaded.missing_bodies] == [("a", "content", "a.py"), ("b", "content", "b.sh")]


def test_inline_reference_cannot_escape_the_flow_folder(tmp_path: Path) -> None:
    write(tmp_path, "secret.py", "x")
    text = BARE.replace("!inline a.py", "!inline ../secret.py")
    loaded = load_flow_file(write(tmp_path, "z.flow/flow.yaml", text))
    assert loaded.missing_bodies[0].file == "../secret.py"


def test_manifest_is_unwrapped(tmp_path: Path) -> None:
    text = "apiVersion: millrace.dev/v1alpha1\nkind: Flow\nmetadata: {name: m}\nspec:\n  summary: s\n  value: {modules: []}\n  runtime: {}\n"
    loaded = load_flow_file(write(tmp_path, "m.yaml", text))
    assert loaded.name == "m" and loaded.manifest is not None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("value: [unclosed\n", "invalid YAML at line"),
        ("summary: x\n", "value"),
        ("value: {}\n", "value.modules"),
        ("apiVersion: v1\nkind: Flow\nspec: {value: {modules: []}}\n", "apiVersion"),
        ("apiVersion: millrace.dev/v1alpha1\nkind: Pod\nspec: {value: {modules: []}}\n", "kind"),
        ("- just a list\n", "mapping"),
    ],
)
def test_bad_documents_are_named(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(FlowError) as info:
        load_flow_file(write(tmp_path, "bad.yaml", text))
    assert needle in str(info.value)
    assert "flow 'bad'" in str(info.value)


def test_unknown_module_type_names_the_step(tmp_path: Path) -> None:
    text = "value:\n  modules:\n    - id: s1\n      value: {type: teleport}\n"
    with pytest.raises(FlowError) as info:
        load_flow_file(write(tmp_path, "bad.yaml", text))
    assert "step 's1'" in str(info.value) and "teleport" in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read flow file"):
        load_flow_file(tmp_path / "nope.yaml")


def test_the_name_does_not_depend_on_how_the_path_was_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "x.flow/flow.yaml", "value: {modules: []}\n")
    monkeypatch.chdir(path.parent)
    typed = [Path("flow.yaml"), path, Path("../x.flow/flow.yaml")]
    assert [(load_flow_file(p).name, load_flow_file(p).source) for p in typed] == [("x", path.resolve())] * 3


def test_ids_are_given_before_inline_bodies_are_resolved(tmp_path: Path) -> None:
    text = "value:\n  modules:\n    - value: {type: rawscript, language: bash, content: '!inline gone.sh', input_transforms: {}}\n"
    loaded = load_flow_file(write(tmp_path, "g.yaml", text))
    assert loaded.default_ids == ["module_0"]
    assert [(m.step, m.file) for m in loaded.missing_bodies] == [("module_0", "gone.sh")]


def test_default_ids_follow_the_position_in_branches_and_the_failure_module() -> None:
    def anonymous() -> dict[str, Any]:
        return {"value": {"type": "identity"}}

    branchone = {"id": "b", "value": {"type": "branchone", "branches": [{"expr": "true", "modules": [anonymous()]}],
                                      "default": [anonymous()]}}
    document = {"value": {"modules": [branchone], "failure_module": anonymous()}}
    loaded = load_flow_document(document, "f")
    value = loaded.flow.value
    assert value.modules[0].value.branches[0].modules[0].id == "module_0_0_0"  # type: ignore[union-attr]
    assert value.modules[0].value.default[0].id == "module_0_default_0"  # type: ignore[union-attr]
    assert value.failure_module is not None and value.failure_module.id == "failure"
    assert "id" not in document["value"]["failure_module"]  # the caller's document is left as it was
