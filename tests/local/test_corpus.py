"""The Windmill compatibility corpus: every flow loads and validates or names
what is unsupported, the compatibility page says what the code does, and the
flows whose bodies a test can supply run unchanged.

The corpus is read from ../shared at test time; it is never copied into the
project. Bodies for `!inline` files are written next to a temporary copy of
the flow file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from millrace.compat.corpus import RUN_IN_TESTS, check_corpus, flow_file, render_markdown

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "windmill-flows"

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def results() -> list[Any]:
    assert CORPUS.is_dir(), f"the compatibility corpus is expected at {CORPUS}"
    return check_corpus(CORPUS)


def test_every_corpus_flow_loads_and_validates_or_names_what_is_unsupported(results: list[Any]) -> None:
    assert len(results) == 40
    for result in results:
        assert result.loaded, (result.folder, result.errors)
        for problem in result.errors:
            # Precise: every problem names the step or the field it is about.
            assert problem.step or problem.field, (result.folder, str(problem))
    outcomes = {r.folder: r.outcome for r in results}
    assert outcomes["40-gtm-daily-pipeline-json"] == "valid"
    assert outcomes["22-process-newsletters-aiagent"] == "unsupported"
    assert sum(o != "unsupported" for o in outcomes.values()) >= 34


def test_missing_inline_bodies_do_not_stop_the_rest_from_validating(results: list[Any]) -> None:
    branchy = next(r for r in results if r.folder == "01-unnecessarily-branchy")
    assert len(branchy.missing) == 4 and not branchy.other_errors
    assert all("inline_script_" in p.message for p in branchy.missing)


def test_the_compatibility_page_is_current(results: list[Any]) -> None:
    page = (REPO / "docs" / "compatibility.md").read_text()
    assert page == render_markdown(results), "regenerate: python -m millrace.compat.report ../shared/corpus/windmill-flows docs/compatibility.md"


TS_IDENTITY = "export async function main(x: string) {\n  return x;\n}\n"
BODIES: dict[str, tuple[dict[str, str], dict[str, Any], Any]] = {
    "31-math-expression": (
        {
            "step1_add.ts": "export async function main(a: number, b: number) {\n  return a + b;\n}\n",
            "step2_multiply.ts": "export async function main(a: number, sum: number) {\n  return sum * a;\n}\n",
            "step3_add_b.ts": "export async function main(b: number, product: number) {\n  return product + b;\n}\n",
        },
        {"a": 2, "b": 3},
        13,
    ),
    "04-same-worker-example": (
        {
            "write_to_file.inline_script.ts": (
                "export async function main(path: string) {\n"
                "  await Deno.writeTextFile(`./shared/${path}`, 'written by step a');\n"
                "  return path;\n}\n"
            ),
            "read_from_file.inline_script.ts": (
                "export async function main(path: string) {\n"
                "  return await Deno.readTextFile(`./shared/${path}`);\n}\n"
            ),
        },
        {},
        "written by step a",
    ),
    "01-unnecessarily-branchy": (
        {
            "inline_script_0.inline_script.ts": "export async function main() {\n  return 'start';\n}\n",
            "inline_script_1.inline_script.ts": TS_IDENTITY,
            "inline_script_2.inline_script.ts": "export async function main() {\n  return 1;\n}\n",
            "inline_script_3.inline_script.ts": TS_IDENTITY,
        },
        {},
        # Every branch is a sub-flow of the flow's input: its identity steps pass that input on
        # (Windmill: worker_flow.rs push_next_flow_job).
        [{}, {}, {}],
    ),
}


def test_every_flow_marked_run_has_bodies_here() -> None:
    assert set(BODIES) == set(RUN_IN_TESTS)


@pytest.mark.parametrize("folder", sorted(BODIES))
def test_corpus_flow_runs_unchanged_with_supplied_bodies(folder: str, tmp_path: Path) -> None:
    bodies, args, expected = BODIES[folder]
    source = flow_file(CORPUS / folder)
    copy = tmp_path / f"{folder}.flow" / source.name
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    for name, body in bodies.items():
        (copy.parent / name).write_text(body)
    command = [sys.executable, "-m", "millrace.cli.main", "run", str(copy), "--output", "json",
               "--args-file", str(tmp_path / "args.json")]
    (tmp_path / "args.json").write_text(json.dumps(args))
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    outcome = json.loads(done.stdout)
    assert outcome["phase"] == "Succeeded" and outcome["result"] == expected
