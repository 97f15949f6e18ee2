"""Local run records under `.millrace/runs/<run id>/`, written atomically."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from ..engine.library import Library, ScriptSource
from ..model.flow import OpenFlow
from ..model.loader import LoadedFlow
from ..model.run import RunStatus


def home() -> Path:
    return Path(os.environ.get("MILLRACE_HOME", ".millrace")).resolve()


def new_run_id(flow_name: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in flow_name)[:40].strip("-") or "flow"
    return f"{slug}-{stamp}-{secrets.token_hex(3)}"


def write_json_atomic(path: Path, value: Any) -> None:
    """Write to a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # One json.dumps, not json.dump: only a one-shot, unindented dump runs in C (a run
            # record is written up to ten times a second while a run goes on).
            handle.write(json.dumps(value, default=str))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RunStore:
    """Where one shell keeps its runs."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or home()) / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def save(self, run_id: str, flow_name: str, state: RunStatus) -> None:
        record = {"run": run_id, "flow": flow_name, "status": state.model_dump(mode="json", by_alias=True)}
        write_json_atomic(self.run_dir(run_id) / "run.json", record)

    def save_definition(self, run_id: str, loaded: LoadedFlow, library: Library) -> None:
        """Pin what the run executes, so that resuming it later runs the same flow."""
        definition = {
            "name": loaded.name,
            "key": loaded.key,
            "flow": _dump(loaded.flow),
            "scripts": {p: {"language": s.language, "content": s.content} for p, s in library.scripts.items()},
            "flows": {p: _dump(f) for p, f in library.flows.items()},
        }
        write_json_atomic(self.run_dir(run_id) / "definition.json", definition)

    def load(self, run_id: str) -> tuple[LoadedFlow, Library, RunStatus]:
        directory = self.run_dir(run_id)
        try:
            definition = json.loads((directory / "definition.json").read_text(encoding="utf-8"))
            record = json.loads((directory / "run.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyError(run_id) from None
        loaded = LoadedFlow(name=definition["name"], flow=OpenFlow.model_validate(definition["flow"]),
                            key=definition.get("key", ""))
        library = Library(
            scripts={p: ScriptSource(path=p, **s) for p, s in definition["scripts"].items()},
            flows={p: OpenFlow.model_validate(f) for p, f in definition["flows"].items()},
        )
        return loaded, library, RunStatus.model_validate(record["status"])

    def all_runs(self) -> list[dict[str, Any]]:
        """Every run's record, newest first."""
        records = []
        for path in self.root.glob("*/run.json"):
            try:
                records.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue
        return sorted(records, key=lambda r: r["status"].get("startedAt") or 0, reverse=True)


def _dump(flow: OpenFlow) -> dict[str, Any]:
    return flow.model_dump(mode="json", by_alias=True, exclude_none=True)
