#!/usr/bin/env python3
"""Install the TypeScript runtimes (bun, deno) from the npm registry.

Both npm packages ship their binary inside a per-platform optional dependency
(`@oven/bun-linux-x64`, `@deno/linux-x64-glibc`, ...), and their postinstall
scripts only copy or link it, so installing with `--ignore-scripts` takes
nothing from outside the registry. Each tool lands in
`$MILLRACE_CACHE/node-tools/<name>-<version>/`, and `node-tools/bin/<name>`
links to its binary: the runtime looks there after `MILLRACE_<NAME>` and PATH.
A version already installed costs one stat, so `make tools` is quick to rerun.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The runtime's lookup owns the cache layout; it needs only the standard library.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "operator"))
from millrace.runtime.toolchain import node_tools_dir  # noqa: E402


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    binary_glob: str  # where the platform package puts the binary, under node_modules/


TOOLS = (
    Tool("bun", "1.4.4", "@oven/bun-*/bin/bun"),
    Tool("deno", "2.9.6", "@deno/*/deno"),
)
COMPLETE = ".complete"  # written last, so a half-done install is redone


def install(tool: Tool, root: Path) -> Path:
    """Install one tool unless present; return its binary."""
    home = root / f"{tool.name}-{tool.version}"
    if not (home / COMPLETE).exists():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{tool.name}-", dir=root))
        staging.chmod(0o755)  # mkdtemp makes it private; the tools are for every user
        try:
            subprocess.run(
                ["npm", "install", "--prefix", str(staging), "--ignore-scripts", "--no-save",
                 "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error",
                 f"{tool.name}@{tool.version}"],
                check=True, stdin=subprocess.DEVNULL,
            )
            binary_in(staging, tool)  # fail before publishing a tree without a binary
            (staging / COMPLETE).write_text(tool.version)
            shutil.rmtree(home, ignore_errors=True)
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    binary = binary_in(home, tool)
    subprocess.run([str(binary), "--version"], check=True, capture_output=True)
    link(root / "bin" / tool.name, binary)
    return binary


def binary_in(prefix: Path, tool: Tool) -> Path:
    found = sorted((prefix / "node_modules").glob(tool.binary_glob))
    if not found:
        raise RuntimeError(f"{tool.name}@{tool.version}: npm installed no binary for this platform")
    return found[0]


def link(path: Path, target: Path) -> None:
    """Point path at target atomically, so a running step never sees no link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target)
    temporary.replace(path)


def main() -> int:
    if shutil.which("npm") is None:
        print("install_node_tools: npm is needed (apt-get install npm)", file=sys.stderr)
        return 1
    root = node_tools_dir()
    failed = False
    for tool in TOOLS:
        try:
            print(f"{tool.name} {tool.version}: {install(tool, root)}")
        except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
            print(f"install_node_tools: {tool.name} {tool.version} failed: {error}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
