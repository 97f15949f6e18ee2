"""Which step languages the engine runs, and how Windmill names map to them."""

from __future__ import annotations

from typing import cast

from ..runtime.protocol import Language

SUPPORTED: dict[str, Language] = {
    "python3": "python3",
    "bash": "bash",
    "bun": "bun",
    "deno": "deno",
    # Windmill's native TypeScript runs plain fetch-style scripts: bun runs them.
    "nativets": "bun",
    # SQL runs in the SQL wrapper, with the dialect's driver (runtime/wrappers/sql.py).
    "postgresql": "postgresql",
    "mysql": "mysql",
    "duckdb": "duckdb",
}


def runtime_language(language: str) -> Language | None:
    return cast("Language | None", SUPPORTED.get(language))
