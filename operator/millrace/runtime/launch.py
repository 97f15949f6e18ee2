"""How a step starts: the files it needs in its working directory, and its command.

The same plan serves every shell: locally the files are written into the
step's directory; a pod gets them mounted. Each language's wrapper reports
the outcome to the step API. The client SDKs come from ./sdk: python's
wrapper puts it on sys.path (`import wmill`); bun finds `windmill-client`
through the `paths` of a tsconfig.json in the step's directory, deno through
an import map there. Neither is a node_modules folder, which would turn off
bun's auto-install of the packages a script imports; deno fetches `npm:`
imports itself. Windmill's other spellings of the client's import are
rewritten to `windmill-client` in place, so line numbers stay the user's, and
for bun an `npm:` prefix is dropped (bun installs `name@version` as it is).

Workspace scripts the step imports (`modules`) are written beside it at their
path, `u/admin/helper.py` or `f/folder/x.ts`, where Python's import system
and the TypeScript path mappings (`/u/...`, `/f/...`) find them. A step run
by path has its own relative imports made absolute first (it runs as
main.*). A Python step that needs packages gets a requirements.txt
(runtime/requirements.py), which its wrapper installs before it runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import bash_signature, go_signature, requirements
from .imports import TYPESCRIPT, absolute_imports
from .languages import LANGUAGES, WRAPPERS
from .protocol import StepRequest

SDK = Path(__file__).parent / "sdk"
TS_CLIENT = "windmill-client"
# npm:windmill-client@1.2.3 and https://deno.land/x/windmill@v1.2.3/mod.ts, quoted.
TS_CLIENT_SPELLINGS = re.compile(r"""(["'])(?:npm:windmill-client(?:@[^"'/]*)?|https://deno\.land/x/windmill(?:@[^"'/]*)?/mod\.ts)\1""")
NPM_PREFIX = re.compile(r"""(?<=["'])npm:(?=[^"'\s]+["'])""")
# Absolute workspace imports, `/f/folder/x.ts`, resolve below the step's directory.
WORKSPACE_PREFIXES = ("/u/", "/f/")
REQUIREMENTS_FILE = "requirements.txt"

# SQL dialects all run the one SQL wrapper, told the dialect.
SQL = frozenset(name for name, row in LANGUAGES.items() if row.wrapper == "sql.py")


@dataclass(frozen=True)
class Launch:
    files: dict[str, str] = field(default_factory=dict)  # path in the step's directory -> content
    argv: list[str] = field(default_factory=list)


def typescript(code: str, bun: bool) -> str:
    """The script with Windmill's other spellings of the client's import made `windmill-client`
    (and, for bun, `npm:` prefixes dropped)."""
    code = TS_CLIENT_SPELLINGS.sub(f'"{TS_CLIENT}"', code)
    return NPM_PREFIX.sub("", code) if bun else code


def bun_config(sdk: Path) -> str:
    """tsconfig.json: the client and the workspace's absolute imports, as path mappings."""
    paths = {TS_CLIENT: [str(sdk / TS_CLIENT / "index.ts")],
             **{f"{prefix}*": [f".{prefix}*"] for prefix in WORKSPACE_PREFIXES}}
    return json.dumps({"compilerOptions": {"paths": paths}})


def deno_import_map(sdk: Path) -> str:
    imports = {TS_CLIENT: str(sdk / TS_CLIENT / "index.ts"),
               **{prefix: f".{prefix}" for prefix in WORKSPACE_PREFIXES}}
    return json.dumps({"imports": imports})


def _modules(request: StepRequest) -> dict[str, str]:
    """The imported workspace scripts' files; TypeScript ones with the client's spellings made one."""
    if request.language in TYPESCRIPT:
        return {name: typescript(code, request.language == "bun") for name, code in request.modules.items()}
    return dict(request.modules)


def python_requirements(request: StepRequest, code: str) -> dict[str, str]:
    """requirements.txt for a Python step that needs packages; nothing for one that does not."""
    imported = {name.removesuffix(".py"): text for name, text in request.modules.items()}
    needed = requirements.requirements(code, request.lock, imported)
    return {REQUIREMENTS_FILE: "\n".join(needed) + "\n"} if needed else {}


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
    code = absolute_imports(request.language, request.code, request.script_path)
    wrapper = str(wrappers / LANGUAGES[request.language].wrapper)
    if request.language in SQL:
        return Launch({"main.sql": request.code, "args.json": args}, [program, wrapper, request.language])
    match request.language:
        case "python3":
            files = {**_modules(request), **python_requirements(request, code), "main.py": code, "args.json": args}
            return Launch(files, [program, wrapper])
        case "bash":
            arguments = bash_signature.positional(request.code, request.args)
            return Launch({"main.sh": f"set -e\n{request.code}"}, [program, wrapper, *arguments])
        case "program":
            # The image's /bin/sh runs the script as written (Windmill's `# sandbox <image>`); args.json is millrace's.
            arguments = bash_signature.positional(request.code, request.args)
            return Launch({"main.sh": request.code, "args.json": args}, [program, wrapper, *arguments])
        case "bun":
            files = {**_modules(request), "tsconfig.json": bun_config(sdk), "main.ts": typescript(code, True),
                     "args.json": args}
            return Launch(files, [program, "run", wrapper])
        case "deno":
            files = {**_modules(request), "import_map.json": deno_import_map(sdk),
                     "main.ts": typescript(code, False), "args.json": args}
            command = [program, "run", "--allow-all", "--no-prompt", "--import-map=import_map.json", wrapper]
            return Launch(files, command)
        case "go":
            params = json.dumps(go_signature.parameter_names(request.code))
            return Launch({"inner.go": request.code, "args.json": args, "params.json": params}, ["bash", wrapper, program])
    raise ValueError(f"no launch plan for {request.language}")
