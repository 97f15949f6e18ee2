"""Variables, resources and states of the local shell: a folder of JSON files under $MILLRACE_HOME.

    variables/<path>.json     {value, is_secret, description}
    resources/<path>.json     {value, resource_type, description}
    state/<flow>/<step id>.json   {value}: a step's state, kept across runs
    state-owners/<flow>.json      {source}: the flow file whose states state/<flow>/ holds
    runs/<run id>/user_state.json the run's custom flow state, kept with the run's record

Folders are 0700 and files 0600: a secret is readable by its owner only.
Paths are checked as in a cluster (runtime/datapaths.py), so no path leaves its folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..runtime.datapaths import SEGMENT, DataPathError, checked
from ..runtime.stepapi.models import Resource, Variable
from .store import home, write_json_atomic

__all__ = ["DataFileError", "DataPathError", "DataStore", "Live"]


class DataFileError(ValueError):
    """A stored file that is not JSON, e.g. edited by hand."""


class DataStore:
    """One folder of variables, resources and states; safe to share between threads of one process."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or home()

    # --- variables and resources ---

    def set_variable(self, path: str, variable: Variable) -> None:
        self._write(self._file("variables", path), variable.model_dump())

    def get_variable(self, path: str) -> Variable | None:
        document = self._read(self._file("variables", path))
        return None if document is None else Variable.model_validate(document)

    def variables(self) -> dict[str, Variable]:
        return {path: Variable.model_validate(document) for path, document in self._all("variables")}

    def set_resource(self, path: str, resource: Resource) -> None:
        self._write(self._file("resources", path), resource.model_dump(mode="json"))

    def get_resource(self, path: str) -> Resource | None:
        document = self._read(self._file("resources", path))
        return None if document is None else Resource.model_validate(document)

    def resources(self) -> dict[str, Resource]:
        return {path: Resource.model_validate(document) for path, document in self._all("resources")}

    def mappings(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The values by path that input transforms see: Evaluator(sandbox, *store.mappings())."""
        variables = {path: variable.value for path, variable in self.variables().items()}
        resources = {path: resource.value for path, resource in self.resources().items()}
        return variables, resources

    def views(self) -> tuple[Mapping[str, str], Mapping[str, Any]]:
        """Like mappings(), but read at each lookup: a step sees what the steps before it set."""
        return (Live(self.get_variable, self.variables),
                Live(self.get_resource, self.resources))

    def secrets(self) -> list[str]:
        """The values of secret variables, for redact()."""
        return [variable.value for variable in self.variables().values() if variable.is_secret and variable.value]

    # --- states ---

    def state_key(self, name: str, source: Path) -> str:
        """The folder of a flow's states: its name, unless another flow file already owns that name.

        The first flow file run under a name owns `state/<name>/` (recorded in
        `state-owners/`); a different file with the same name gets
        `<name>-<digest of its real path>`, so two flows never share a state.
        """
        slug = "".join(c if SEGMENT.fullmatch(c) or c in ".-" else "-" for c in name).strip(".-") or "flow"
        owner = str(source.resolve())
        for key in (slug, f"{slug}-{hashlib.sha256(owner.encode()).hexdigest()[:12]}"):
            marker = self.root / "state-owners" / f"{key}.json"
            claimed = self._read(marker)
            if claimed is None:
                self._write(marker, {"source": owner})
                return key
            if isinstance(claimed, dict) and claimed.get("source") == owner:
                return key
        return key  # two real paths with the same digest: not met in practice

    def get_state(self, flow: str, step_id: str) -> Any:
        document = self._read(self._state_file(flow, step_id))
        return None if document is None else document.get("value")

    def set_state(self, flow: str, step_id: str, value: Any) -> None:
        self._write(self._state_file(flow, step_id), {"value": value})

    def user_state(self, run_id: str) -> dict[str, Any]:
        """The run's custom flow state (what RunStatus.user_state shows)."""
        return self._read(self._user_state_file(run_id)) or {}

    def set_user_state(self, run_id: str, state: dict[str, Any]) -> None:
        self._write(self._user_state_file(run_id), state)

    # --- files ---

    def _file(self, kind: str, path: str) -> Path:
        return self.root / kind / f"{checked(path)}.json"

    def _state_file(self, flow: str, step_id: str) -> Path:
        return self._file("state", f"{flow}/{step_id}")

    def _user_state_file(self, run_id: str) -> Path:
        return self.root / "runs" / checked(run_id) / "user_state.json"

    def _write(self, file: Path, document: Any) -> None:
        self._make_private_dirs(file.parent)
        write_json_atomic(file, document)  # mkstemp makes the file 0600

    def _make_private_dirs(self, folder: Path) -> None:
        missing: list[Path] = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            created.mkdir(mode=0o700, exist_ok=True)

    @staticmethod
    def _read(file: Path) -> Any:
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as problem:
            raise DataFileError(f"{file} is not JSON ({problem}): fix or delete it") from None

    def _all(self, kind: str) -> Iterator[tuple[str, Any]]:
        folder = self.root / kind
        for file in sorted(folder.rglob("*.json")):
            path = file.relative_to(folder).as_posix()[: -len(".json")]
            yield path, self._read(file)



class Live(Mapping[str, Any]):
    """Values by path, each read from the store when it is looked up."""

    def __init__(self, get: Callable[[str], Variable | Resource | None],
                 every: Callable[[], Mapping[str, Variable | Resource]]) -> None:
        self._get, self._every = get, every

    def __getitem__(self, path: str) -> Any:
        try:
            entry = self._get(path)
        except DataPathError:
            entry = None  # a path that cannot exist is simply not there
        if entry is None:
            raise KeyError(path)
        return entry.value

    def __iter__(self) -> Iterator[str]:
        return iter(self._every())

    def __len__(self) -> int:
        return len(self._every())
