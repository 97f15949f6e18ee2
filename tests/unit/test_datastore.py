"""The local store of variables, resources and states; and `millrace variable|resource`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from millrace.cli.main import main
from millrace.local.datastore import DataPathError, DataStore
from millrace.runtime.stepapi.models import Resource, Variable


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_readable_by_the_owner_only(tmp_path: Path):
    store = DataStore(tmp_path / "home")
    store.set_variable("u/alice/key", Variable(value="s", is_secret=True))
    store.set_state("flow", "a", {"n": 1})
    file = tmp_path / "home" / "variables" / "u" / "alice" / "key.json"
    assert mode(file) == 0o600
    assert {mode(folder) for folder in (file.parent, file.parent.parent, tmp_path / "home")} == {0o700}
    assert mode(tmp_path / "home" / "state" / "flow" / "a.json") == 0o600


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "a//b", ".hidden", "a/.", "", "a\\b", "a/b/"])
def test_paths_that_could_leave_the_folder_are_refused(tmp_path: Path, path: str):
    with pytest.raises(DataPathError, match="invalid path"):
        DataStore(tmp_path).set_variable(path, Variable(value="x"))
    assert not any(tmp_path.parent.glob("x.json"))


def test_values_round_trip_and_feed_the_evaluator_and_redaction(tmp_path: Path):
    store = DataStore(tmp_path)
    store.set_variable("u/a/open", Variable(value="1", description="d"))
    store.set_variable("u/a/secret", Variable(value="hunter2", is_secret=True))
    store.set_resource("f/db", Resource(value={"host": "h"}, resource_type="postgresql"))
    assert store.get_variable("u/a/open") == Variable(value="1", description="d")
    assert store.get_resource("nope") is None
    assert store.mappings() == ({"u/a/open": "1", "u/a/secret": "hunter2"}, {"f/db": {"host": "h"}})
    assert store.secrets() == ["hunter2"]


def test_state_and_flow_user_state(tmp_path: Path):
    store = DataStore(tmp_path)
    assert store.get_state("f", "a") is None and store.user_state("run-1") == {}
    store.set_state("f", "a", [1])
    store.set_user_state("run-1", {"k": 2})
    assert store.get_state("f", "a") == [1] and store.user_state("run-1") == {"k": 2}


def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("MILLRACE_HOME", str(tmp_path))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_never_prints_a_secret_unless_revealed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli(monkeypatch, tmp_path, capsys, "variable", "set", "u/a/pw", "hunter2", "--secret")[0] == 0
    assert cli(monkeypatch, tmp_path, capsys, "variable", "set", "u/a/name", "bob", "--description", "who")[0] == 0
    code, out, err = cli(monkeypatch, tmp_path, capsys, "variable", "get", "u/a/pw")
    assert code == 0 and "hunter2" not in out + err and "--reveal" in err
    assert cli(monkeypatch, tmp_path, capsys, "variable", "get", "u/a/pw", "--reveal")[1] == "hunter2\n"
    code, out, _ = cli(monkeypatch, tmp_path, capsys, "variable", "list")
    assert "hunter2" not in out and out.splitlines() == ['u/a/name\t"bob"\twho', "u/a/pw\t(secret)\t"]


def test_cli_resources_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli(monkeypatch, tmp_path, capsys, "resource", "set", "f/db", '{"port": 5432}', "--type", "postgresql")[0] == 0
    assert json.loads(cli(monkeypatch, tmp_path, capsys, "resource", "get", "f/db")[1]) == {"port": 5432}
    assert cli(monkeypatch, tmp_path, capsys, "resource", "list")[1] == "f/db\tpostgresql\t\n"
    code, _, err = cli(monkeypatch, tmp_path, capsys, "resource", "set", "f/x", "{not json")
    assert code == 2 and "not JSON" in err
    code, _, err = cli(monkeypatch, tmp_path, capsys, "variable", "get", "u/none")
    assert code == 1 and "u/none" in err
    code, _, err = cli(monkeypatch, tmp_path, capsys, "variable", "set", "../x", "v")
    assert code == 2 and "invalid path" in err
