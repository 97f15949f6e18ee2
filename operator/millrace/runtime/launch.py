"""How a step starts: the files it needs in its working directory, and its command.

The same plan serves every shell: locally the files are written into the
step's directory; a pod gets them mounted. Each language's wrapper reports
the outcome to the step API. The client SDKs come from ./sdk: python's
wrapper puts it on sys.path (`import wmill`); bun finds `windmill-client`
through a node_modules link in the step's directory, deno through an import
map. Windmill's other spellings of the client's import are rewritten to
`windmill-client` in place, so line numbers stay the user's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import bash_signature, go_signature
from .languages import LANGUAGES
from .protocol import StepRequest

WRAPPERS = Path(__file__).parent / "wrappers"
SDK = Path(__file__).parent / "sdk"
TS_CLIENT = "windmill-client"
# npm:windmill-client@1.2.3 and https://deno.land/x/windmill@v1.2.3/mod.ts, quoted.
TS_CLIENT_SPELLINGS = re.compile(r"""(["'])(?:npm:windmill-client(?:@[^"'/]*)?|https://deno\.land/x/windmill(?:@[^"'/]*)?/mod\.ts)\1""")

# SQL dialects all run the one SQL wrapper, told the dialect.
SQL = frozenset(name for name, row in LANGUAGES.items() if row.wrapper == "sql.py")


@dataclass(frozen=True)
class Launch:
    files: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # name in the step's directory -> what it points at


def typescript(code: str) -> str:
    """The script with Windmill's other spellings of the client's import made `windmill-client`."""
    return TS_CLIENT_SPELLINGS.sub(f'"{TS_CLIENT}"', code)


ENTRYPOINT_FILE = "entrypoint"


def plan(request: StepRequest, program: str, wrappers: Path = WRAPPERS, sdk: Path = SDK) -> Launch:
    """The files and command for `request`, run by `program` (the language's runtime binary)."""
    launch = _plan(request, program, wrappers, sdk)
    if request.entrypoint != "main":
        # The wrappers call main() unless this file names another function.
        launch.files[ENTRYPOINT_FILE] = request.entrypoint
    return launch


def _plan(request: StepRequest, program: str, wrappers: Path, sdk: Path) -> Launch:
    args = json.dumps(request.args)
    wrapper = str(wrappers / LANGUAGES[request.language].wrapper)
    if request.language in SQL:
        return Launch({"main.sql": request.code, "args.json": args}, [program, wrapper, request.language])
    match request.language:
        case "python3":
            return Launch({"main.py": request.code, "args.json": args}, [program, wrapper])
        case "bash":
            arguments = bash_signature.positional(request.code, request.args)
            return Launch({"main.sh": f"set -e\n{request.code}"}, [program, wrapper, *arguments])
        case "program":
            # The image's /bin/sh runs the script as written (Windmill's `# sandbox <image>`); args.json is millrace's.
            arguments = bash_signature.positional(request.code, request.args)
            return Launch({"main.sh": request.code, "args.json": args}, [program, wrapper, *arguments])
        case "bun":
            files = {"main.ts": typescript(request.code), "args.json": args}
            links = {f"node_modules/{TS_CLIENT}": str(sdk / TS_CLIENT)}
            return Launch(files, [program, "run", wrapper], links)
        case "deno":
            import_map = f"--import-map={sdk / 'import_map.json'}"
            command = [program, "run", "--allow-all", "--no-prompt", import_map, wrapper]
            return Launch({"main.ts": typescript(request.code), "args.json": args}, command)
        case "go":
            params = json.dumps(go_signature.parameter_names(request.code))
            return Launch({"inner.go": request.code, "args.json": args, "params.json": params}, ["bash", wrapper, program])
    raise ValueError(f"no launch plan for {request.language}")
