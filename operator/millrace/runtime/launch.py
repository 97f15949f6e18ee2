"""How a step starts: the files it needs in its working directory, and its command.

The same plan serves every shell: locally the files are written into the
step's directory; a pod gets them mounted. Each language's wrapper reports
the outcome to the file named by MILLRACE_RESULT_FILE.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import bash_signature
from .protocol import Language, StepRequest

WRAPPERS = Path(__file__).parent / "wrappers"

# The binary each language runs on. Windmill's native TypeScript is plain
# fetch-style code: bun runs it.
RUNTIME: dict[Language, str] = {"python3": "python3", "bash": "bash", "bun": "bun", "deno": "deno", "nativets": "bun"}


@dataclass(frozen=True)
class Launch:
    files: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)


def plan(request: StepRequest, program: str, wrappers: Path = WRAPPERS) -> Launch:
    """The files and command for `request`, run by `program` (the language's runtime binary)."""
    args = json.dumps(request.args)
    match RUNTIME[request.language]:
        case "python3":
            return Launch({"main.py": request.code, "args.json": args}, [program, str(wrappers / "python3.py")])
        case "bash":
            arguments = bash_signature.positional(request.code, request.args)
            return Launch({"main.sh": request.code}, [program, str(wrappers / "bash.sh"), *arguments])
        case "bun":
            return Launch({"main.ts": request.code, "args.json": args}, [program, "run", str(wrappers / "typescript.ts")])
        case "deno":
            command = [program, "run", "--allow-all", "--no-prompt", str(wrappers / "typescript.ts")]
            return Launch({"main.ts": request.code, "args.json": args}, command)
    raise ValueError(f"no launch plan for {request.language}")
