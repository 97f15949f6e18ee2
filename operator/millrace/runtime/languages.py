"""The step languages: one row per language, every other place derives from it.

A row says which Windmill `language` names run on it, the binary that runs
it, its wrapper, its default image in the cluster, the file suffixes of its
scripts by path, and whether the local fork server runs it. Standard library
only, imported by the protocol models and the shells alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

WRAPPERS = Path(__file__).parent / "wrappers"

# The runtime languages a step request names (the table's keys, checked below).
Language = Literal["python3", "bash", "bun", "deno", "go", "postgresql", "mysql", "duckdb", "program"]


@dataclass(frozen=True)
class StepLanguage:
    name: Language
    windmill_names: tuple[str, ...]  # the flow's `language` values that run on it
    program: str  # the binary, found on PATH (or the tools cache) locally, in the image in the cluster
    wrapper: str  # file under runtime/wrappers that runs the step and reports its outcome
    image: str  # default image of its step pods
    script_suffixes: tuple[str, ...]  # how a workspace script's file name ends, most specific first
    fork_server: bool = False  # locally, forked from the warm Python rather than started
    install_dirs: tuple[str, ...] = ()  # where the binary usually is when it is not on PATH
    # How Windmill's exit-code error names the process (its executor's handle_child call); None: no
    # user process of that name (SQL runs in our own wrapper, whose crash is ours).
    exit_name: str | None = None


LANGUAGES: dict[Language, StepLanguage] = {
    row.name: row
    for row in (
        StepLanguage("python3", ("python3",), "python3", "python3.py", "python:3.12-slim", (".py",), fork_server=True,
                     exit_name="python run"),
        StepLanguage("bash", ("bash",), "bash", "bash.sh", "bash:5.2", (".sh",), exit_name="bash run"),
        # Windmill's native TypeScript runs plain fetch-style scripts: bun runs them.
        StepLanguage("bun", ("bun", "nativets"), "bun", "typescript.ts", "oven/bun:1", (".bun.ts", ".ts"),
                     exit_name="bun run"),
        StepLanguage("deno", ("deno",), "deno", "typescript.ts", "denoland/deno:2", (".deno.ts",), exit_name="deno run"),
        StepLanguage("go", ("go",), "go", "go/go.sh", "golang:1.26", (".go",), install_dirs=("/usr/local/go/bin",),
                     exit_name="go run"),
        # SQL runs in the SQL wrapper on Python: the image must have the dialect's driver (docs/architecture.md).
        StepLanguage("postgresql", ("postgresql",), "python3", "sql.py", "python:3.12-slim", ()),
        StepLanguage("mysql", ("mysql",), "python3", "sql.py", "python:3.12-slim", ()),
        StepLanguage("duckdb", ("duckdb",), "python3", "sql.py", "python:3.12-slim", ()),
        # A bash step with `# sandbox <image>` (runtime/program.py): its command runs in that image; this one,
        # with bash and coreutils, lays out the pod's working directory and reports.
        StepLanguage("program", (), "bash", "program.sh", "bash:5.2", (), exit_name="bash run"),
    )
}
if set(LANGUAGES) != set(get_args(Language)):
    raise AssertionError("the Language literal and the LANGUAGES table name different languages")

# Windmill's `language` value -> the runtime language that runs it.
SUPPORTED: dict[str, Language] = {name: row.name for row in LANGUAGES.values() for name in row.windmill_names}
DEFAULT_IMAGES: dict[str, str] = {name: row.image for name, row in LANGUAGES.items()}
# (suffix, language), longest suffix first so `x.deno.ts` is not taken for `.ts`.
SCRIPT_SUFFIXES: tuple[tuple[str, Language], ...] = tuple(
    sorted(((suffix, row.name) for row in LANGUAGES.values() for suffix in row.script_suffixes),
           key=lambda pair: -len(pair[0]))
)


def runtime_language(language: str) -> Language | None:
    """The runtime language that runs Windmill's `language`, or None when none does."""
    return SUPPORTED.get(language)
