"""Steps that import packages and other workspace scripts, run by `millrace run` with real installers.

Python packages come from PyPI through uv (into a MILLRACE_PYTHON_CACHE
fresh for each test module), TypeScript packages from the npm registry
through bun's auto-install and deno's npm: support.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli_shell import Shell

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("millrace-cache")


@pytest.fixture
def run(shell: Shell, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MILLRACE_PYTHON_CACHE", str(cache / "python"))

    def go(name: str, *steps: dict[str, Any], scripts: Path | None = None) -> dict[str, Any]:
        flow = shell.flow(name, json.dumps({"summary": name, "value": {"modules": list(steps)}, "schema": {}}))
        return shell.run(flow, *(["--scripts", str(scripts)] if scripts else []))

    return go


def step(step_id: str, code: str, language: str = "python3", **value: Any) -> dict[str, Any]:
    return {"id": step_id, "value": {"type": "rawscript", "language": language, "content": code,
                                     "input_transforms": {}, **value}}


def installed(cache: Path) -> list[Path]:
    root = cache / "python"
    return sorted(p for p in root.iterdir() if p.is_dir() and len(p.name) == 32) if root.is_dir() else []


def test_a_step_without_third_party_imports_runs_no_installer(run: Any, cache: Path) -> None:
    code = "import json, os.path\nimport wmill\n\ndef main():\n    return json.dumps([1])\n"
    outcome = run("plain", step("a", code))
    assert outcome["phase"] == "Succeeded" and outcome["result"] == "[1]"
    assert not (cache / "python").exists()  # not even the cache folder: nothing was resolved


def test_requirements_header_extra_requirements_and_imports_are_installed_once(run: Any, cache: Path) -> None:
    pinned = ("#requirements:\n#six==1.16.0\n\nimport six\n\n"
              "def main():\n    return [six.__version__, six.__file__]\n")
    inferred = ("# extra_requirements:\n# six==1.16.0\n\nimport tabulate\nimport text_unidecode\nimport six\n\n"
                "def main():\n    return [tabulate.tabulate([[1]], tablefmt='plain'), "
                "text_unidecode.unidecode('café'), six.__version__]\n")
    outcome = run("deps", step("pinned", pinned), step("inferred", inferred), step("again", pinned))
    assert outcome["phase"] == "Succeeded", outcome
    assert outcome["result"][0] == "1.16.0" and outcome["result"][1].startswith(str(cache / "python"))
    folders = installed(cache)
    # One folder per requirement set: `again` found `pinned`'s; `inferred` has its own.
    assert len(folders) == 2, folders
    listed = sorted((f / ".requirements.txt").read_text().split() for f in folders)
    assert listed == [["six==1.16.0"], ["six==1.16.0", "tabulate", "text-unidecode"]], listed


def test_inferred_packages_run_in_the_step(run: Any) -> None:
    code = "import tabulate\nimport text_unidecode\n\ndef main():\n    return [tabulate.tabulate([[1, 2]], tablefmt='plain'), text_unidecode.unidecode('café')]\n"
    outcome = run("inferred", step("a", code))
    assert outcome["phase"] == "Succeeded" and outcome["result"] == ["1  2", "cafe"], outcome


def test_a_module_lock_pins_what_is_installed(run: Any) -> None:
    code = "import six\n\ndef main():\n    return six.__version__\n"
    outcome = run("locked", step("a", code, lock="# py: 3.11\nsix==1.15.0\n"))
    assert outcome["phase"] == "Succeeded" and outcome["result"] == "1.15.0", outcome


def test_an_install_failure_fails_the_step_with_the_installers_message(run: Any) -> None:
    code = "#requirements:\n#six==999.0\n\ndef main():\n    return 1\n"
    outcome = run("unsatisfiable", step("needs_six", code))
    assert outcome["phase"] == "Failed", outcome
    error = outcome["error"]
    assert error["name"] == "DependencyError" and error["step_id"] == "needs_six"
    assert "step 'needs_six': installing its requirements (six==999.0) failed: uv exited with" in error["message"]
    assert "six==999.0" in error["message"].split("failed:", 1)[1]  # the installer's own words


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    files = {
        "u/admin/helper.py": "from .names import GREETING\n\ndef greet(who):\n    return f'{GREETING}, {who}'\n",
        "u/admin/names.py": "GREETING = 'hello'\n",
        "f/tools/table.py": "import tabulate\n\ndef render(rows):\n    return tabulate.tabulate(rows, tablefmt='plain')\n",
        "f/tools/entry.py": ("import u.admin.helper\nfrom .table import render\n\n"
                             "def main(who: str = 'path'):\n    return u.admin.helper.greet(who) + render([[3]])\n"),
        "f/tools/entry.ts": ('import { twice } from "./math.ts";\n'
                             "export function main(n: number) { return twice(n); }\n"),
        "f/tools/math.ts": 'import { base } from "./base.ts";\nexport function twice(n: number): number { return base + 2 * n; }\n',
        "f/tools/base.ts": "export const base = 100;\n",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")
    return root


def test_python_steps_import_workspace_scripts_and_their_packages(run: Any, workspace: Path) -> None:
    code = ("import u.admin.helper\nfrom f.tools.table import render\n\n"
            "def main():\n    return [u.admin.helper.greet('you'), render([[1, 2]])]\n")
    who = {"who": {"type": "javascript", "expr": "results.inline.join(' / ')"}}
    script = {"id": "by_path", "value": {"type": "script", "path": "f/tools/entry", "input_transforms": who}}
    outcome = run("imports", step("inline", code), script, scripts=workspace)
    assert outcome["phase"] == "Succeeded", outcome
    assert outcome["result"] == "hello, hello, you / 1  23"


def test_a_typescript_step_by_path_imports_relative_to_its_own_path(run: Any, workspace: Path) -> None:
    (workspace / "f/tools/entry.py").unlink()  # the TypeScript one is the script at f/tools/entry
    script = {"id": "a", "value": {"type": "script", "path": "f/tools/entry",
                                   "input_transforms": {"n": {"type": "static", "value": 5}}}}
    outcome = run("ts-by-path", script, scripts=workspace)
    assert outcome["phase"] == "Succeeded" and outcome["result"] == 110, outcome


def test_a_missing_workspace_import_is_refused_before_the_run(run: Any, workspace: Path) -> None:
    outcome = run("missing", step("a", "from f.tools.nothing import x\n\ndef main():\n    return x\n"), scripts=workspace)
    assert outcome["status"] == "invalid" and outcome["errors"] == [
        {"flow": "missing", "step": "a", "field": "value.content",
         "message": "the step imports the workspace script 'f/tools/nothing', which is not in the workspace"}]


def test_typescript_steps_import_the_client_an_npm_package_and_workspace_scripts(
        run: Any, workspace: Path, typescript: str) -> None:
    package = "is-number" if typescript == "bun" else "npm:is-number@7"
    code = (f'import * as wmill from "windmill-client";\nimport isNumber from "{package}";\n'
            'import { twice } from "/f/tools/math.ts";\n'
            'export async function main() { return [typeof wmill.getVariable, isNumber(4), isNumber("x"), twice(1)]; }\n')
    outcome = run(f"ts-{typescript}", step("a", code, language=typescript), scripts=workspace)
    assert outcome["phase"] == "Succeeded", outcome
    assert outcome["result"] == ["function", True, False, 102]


def test_bun_takes_a_deno_style_npm_import(run: Any) -> None:
    code = 'import isNumber from "npm:is-number@7.0.0";\nexport function main() { return isNumber(1); }\n'
    outcome = run("bun-npm", step("a", code, language="bun"))
    assert outcome["phase"] == "Succeeded" and outcome["result"] is True, outcome
