"""Local run records under `.millrace/runs/<run id>/`, written atomically."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

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
            json.dump(value, handle, indent=1, default=str)
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
