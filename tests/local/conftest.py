"""A real step API on 127.0.0.1 over a throwaway data store, for tests that run steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from millrace.local.datastore import DataStore
from millrace.local.stepapi import LocalStepApi


@pytest.fixture(scope="module")
def data_store(tmp_path_factory: pytest.TempPathFactory) -> DataStore:
    return DataStore(Path(tmp_path_factory.mktemp("millrace-home")))


@pytest.fixture(scope="module")
def step_api(data_store: DataStore) -> Iterator[LocalStepApi]:
    with LocalStepApi(data_store) as api:
        yield api
