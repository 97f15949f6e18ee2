"""Fixtures of the local tier: a real step API over a throwaway data store, and the `millrace` command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from millrace.local.datastore import DataStore
from millrace.local.stepapi import LocalStepApi
from millrace.runtime import toolchain

from cli_shell import Shell


@pytest.fixture(scope="module")
def data_store(tmp_path_factory: pytest.TempPathFactory) -> DataStore:
    return DataStore(Path(tmp_path_factory.mktemp("millrace-home")))


@pytest.fixture(scope="module")
def step_api(data_store: DataStore) -> Iterator[LocalStepApi]:
    with LocalStepApi(data_store) as api:
        yield api


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Shell:
    """`millrace` with its own MILLRACE_HOME; see cli_shell.py."""
    home = tmp_path / "home"
    monkeypatch.setenv("MILLRACE_HOME", str(home))
    return Shell(home, monkeypatch, capsys)


@pytest.fixture(params=["bun", "deno"])
def typescript(request: pytest.FixtureRequest) -> str:
    """Each TypeScript runtime in turn; a missing one fails the test, it is never skipped."""
    try:
        toolchain.find(request.param)
    except toolchain.RuntimeMissing as missing:
        pytest.fail(str(missing))
    return request.param
