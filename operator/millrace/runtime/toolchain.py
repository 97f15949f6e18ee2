"""Where the step runtimes' binaries are: bash, and the TypeScript runtimes.

bun and deno come from the npm registry through `make tools`, which installs
them under the millrace cache and links them as `node-tools/bin/<name>`.
Standard library only: scripts/install_node_tools.py imports this before any
virtual environment exists.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path


class RuntimeMissing(Exception):
    """A step's runtime binary is nowhere to be found."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} not found: run `make tools` (installs bun and deno from the npm registry), "
            f"put {name} on PATH, or set {variable(name)} to its path"
        )


def variable(name: str) -> str:
    return f"MILLRACE_{name.upper()}"


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("MILLRACE_CACHE") or "~/.cache/millrace").expanduser()


def node_tools_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return cache_dir(environ) / "node-tools"


def find(name: str, environ: Mapping[str, str] = os.environ, install_dirs: Iterable[str] = ()) -> str:
    """The binary for `name`: MILLRACE_<NAME>, then PATH, then the tools cache, then `install_dirs`."""
    chosen = environ.get(variable(name)) or shutil.which(name, path=environ.get("PATH"))
    if chosen:
        return chosen
    for candidate in (node_tools_dir(environ) / "bin" / name, *(Path(d) / name for d in install_dirs)):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeMissing(name)
