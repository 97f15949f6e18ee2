"""What a step imports: Python requirements as Windmill infers them, workspace imports, the launch files."""

from __future__ import annotations

import json

import pytest

from millrace.engine.library import ScriptSource, imported_scripts
from millrace.runtime.imports import python_imports, typescript_imports
from millrace.runtime.launch import plan
from millrace.runtime.protocol import StepRequest
from millrace.runtime.requirements import package_of, requirements


def test_the_modules_of_millrace_s_sdk_are_never_installed() -> None:
    assert requirements("import millrace_step_api\nfrom millrace_sql import run\nimport wmill\n") == []


def test_a_script_importing_only_the_standard_library_and_wmill_needs_nothing() -> None:
    code = "import os, sys, json\nfrom collections import abc\nimport wmill\nfrom __future__ import annotations\n"
    assert requirements(code + "def main():\n    import requests\n") == []


@pytest.mark.parametrize(("module", "package"), [
    ("requests", "requests"), ("yaml", "pyyaml"), ("PIL.Image", "Pillow"), ("text_unidecode", "text-unidecode"),
    ("sklearn.linear_model", "scikit-learn"), ("google.cloud.storage", "google-cloud-storage"),
    ("google.cloud.bigquery_storage", "google-cloud-bigquery-storage"), ("azure.mgmt.compute", "azure-mgmt-compute"),
    ("azure.storage.filedatalake", "azure-storage-file-datalake"), ("psycopg2", "psycopg2-binary"),
])
def test_an_import_names_its_package_with_windmills_mapping(module: str, package: str) -> None:
    assert package_of(module) == package


def test_imports_are_read_before_main_only_and_sorted() -> None:
    code = "import tabulate\nfrom dateutil import parser\n\ndef main():\n    return 1\nimport zzz\n"
    assert requirements(code) == ["python-dateutil", "tabulate"]


def test_a_requirements_header_replaces_inference() -> None:
    code = "#requirements:\n#six==1.16.0\n# idna\n\nimport tabulate\n\ndef main(): pass\n"
    assert requirements(code) == ["idna", "six==1.16.0"]


def test_extra_requirements_add_to_inference_and_win_over_an_import_of_the_same_package() -> None:
    code = "# extra_requirements:\n#Six>=1.16\n\nimport six\nimport tabulate\n\ndef main(): pass\n"
    assert requirements(code) == ["Six>=1.16", "tabulate"]


def test_a_pin_comment_on_an_import_line_names_the_requirement() -> None:
    assert requirements("import tabulate  # pin: tabulate==0.9.0\n\ndef main(): pass\n") == ["tabulate==0.9.0"]


def test_inline_script_metadata_lists_the_dependencies() -> None:
    code = '# /// script\n# dependencies = ["six==1.16.0", "idna"]\n# ///\nimport tabulate\n'
    assert requirements(code) == ["idna", "six==1.16.0"]


def test_a_lock_wins_and_its_comments_are_dropped() -> None:
    assert requirements("import tabulate\n", lock="# py: 3.12\nsix==1.15.0\n\n") == ["six==1.15.0"]


def test_imported_workspace_scripts_bring_their_own_requirements() -> None:
    code = "import u.admin.helper\nfrom f.x.y import z\n"
    imported = {"u/admin/helper": "import tabulate\nfrom .other import q\n", "u/admin/other": "import idna\n",
                "f/x/y": "import u.admin.helper\n"}
    assert requirements(code, imported=imported) == ["idna", "tabulate"]


def test_python_workspace_imports_absolute_and_relative() -> None:
    found = python_imports("import u.a.b\nfrom f.c import d\nfrom . import e\nfrom ..g import h\n", "f/c/script")
    assert [(i.module, i.workspace) for i in found] == [("u/a/b", True), ("f/c", True), ("f/c", True), ("f/g", True)]
    assert [i.module for i in python_imports("from .x import y\n")] == []  # an inline step has no path


def test_typescript_workspace_imports() -> None:
    code = ('import * as w from "windmill-client";\nimport { a } from "/f/lib/a.ts";\nexport { b } from "./b";\n'
            'import "/u/me/c";\nconst d = await import("../other/d.ts");\nimport x from "npm:is-number";\n')
    assert typescript_imports(code, "f/lib/main") == ["f/lib/a", "f/lib/b", "u/me/c", "f/other/d"]
    climbing = 'import a from "/f/../../etc/a.ts";\nimport b from "../../../b";\nimport c from "/f/x/../y.ts";\n'
    assert typescript_imports(climbing, "f/lib/main") == ["f/y"]


def test_imported_scripts_follow_imports_and_stay_in_their_language_family() -> None:
    scripts = {"f/a": ScriptSource("f/a", "python3", "from f import b\nimport f.c\n"),
               "f/b": ScriptSource("f/b", "python3", "x = 1\n"), "f/c": ScriptSource("f/c", "bun", "")}
    found = imported_scripts("python3", "import f.a\n", scripts.get)
    assert sorted(found) == ["f/a"]  # `from f import b` names the package f; f/c is TypeScript


def test_a_python_step_gets_requirements_and_its_imported_scripts_as_files() -> None:
    request = StepRequest(key="a/1", language="python3", code="import u.me.h\nimport tabulate\n", workdir="/w",
                          modules={"u/me/h.py": "import six\n"})
    files = plan(request, "python3").files
    assert files["requirements.txt"] == "six\ntabulate\n" and files["u/me/h.py"] == "import six\n"
    assert "requirements.txt" not in plan(request.model_copy(update={"code": "import os\n", "modules": {}}), "python3").files


def test_typescript_steps_map_the_client_and_workspace_paths_without_node_modules() -> None:
    code = 'import * as w from "npm:windmill-client@1.2";\nimport n from "npm:is-number@7";\n'
    bun = plan(StepRequest(key="a/1", language="bun", code=code, workdir="/w"), "bun").files
    assert bun["main.ts"] == 'import * as w from "windmill-client";\nimport n from "is-number@7";\n'
    assert json.loads(bun["tsconfig.json"])["compilerOptions"]["paths"]["/u/*"] == ["./u/*"]
    deno = plan(StepRequest(key="a/1", language="deno", code=code, workdir="/w"), "deno")
    assert 'from "npm:is-number@7"' in deno.files["main.ts"] and "--import-map=import_map.json" in deno.argv
    assert json.loads(deno.files["import_map.json"])["imports"]["/f/"] == "./f/"


def test_a_pin_in_an_imported_script_wins_over_an_inferred_import_of_the_same_package() -> None:
    imported = {"u/me/h": "# extra_requirements:\n#six==1.16.0\nimport six\n"}
    assert requirements("import six\nimport u.me.h\n", imported=imported) == ["six==1.16.0"]


def test_a_script_run_by_path_has_its_relative_imports_made_absolute_in_place() -> None:
    from millrace.runtime.imports import absolute_imports

    python = "from .names import X\nfrom .. import top\nimport os\nfrom ....far import y\n"
    assert absolute_imports("python3", python, "f/lib/entry") == (
        "from f.lib.names import X\nfrom f import top\nimport os\nfrom ....far import y\n")
    ts = 'import { a } from "./a.ts";\nimport b from "../other/b";\nimport c from "is-number";\n'
    assert absolute_imports("bun", ts, "f/lib/entry") == (
        'import { a } from "/f/lib/a.ts";\nimport b from "/f/other/b";\nimport c from "is-number";\n')
    assert absolute_imports("python3", python, None) == python


def test_a_python_step_by_path_brings_what_its_relative_imports_need() -> None:
    request = StepRequest(key="a/1", language="python3", code="from .h import x\n", workdir="/w",
                          script_path="f/lib/entry", modules={"f/lib/h.py": "import tabulate\n"})
    files = plan(request, "python3").files
    assert files["main.py"] == "from f.lib.h import x\n" and files["requirements.txt"] == "tabulate\n"
