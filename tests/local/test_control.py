"""Control behaviours and bad inputs of the local shell, through the `millrace` command.

Resume and cancel misuse, states and variables that are missing or not JSON,
secrets kept out of what is printed and stored, timeouts, sleeps, early
returns, failure modules that fail, the shared directory, runs and show.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cli_shell import Shell
from millrace.local.datastore import DataStore
from millrace.runtime.redact import MASK
from millrace.runtime.stepapi.models import Variable

pytestmark = pytest.mark.local

SECRET = "hunter2-Sx9"


def flow(*modules: str, extra: str = "") -> str:
    """A bare OpenFlow document of these module entries (YAML, indented as list items)."""
    return "summary: test\nvalue:\n" + extra + "  modules:\n" + "".join(modules)


def python(step_id: str, code: str, transforms: str = "{}", options: str = "") -> str:
    """A python3 module; `code` is the body of main(**transforms)."""
    body = "\n".join(f"          {line}" for line in code.strip("\n").splitlines())
    return (f"    - id: {step_id}\n{options}      value:\n        type: rawscript\n        language: python3\n"
            f"        input_transforms: {transforms}\n        content: |\n{body}\n")


def bash(step_id: str, code: str) -> str:
    body = "\n".join(f"          {line}" for line in code.strip("\n").splitlines())
    return (f"    - id: {step_id}\n      value:\n        type: rawscript\n        language: bash\n"
            f"        input_transforms: {{}}\n        content: |\n{body}\n")


APPROVE = "      suspend: {required_events: 1, timeout: 1}\n"


# --- resume and cancel ------------------------------------------------------------------


def test_resume_links_refuse_a_wrong_token_and_accept_approvals_while_the_run_is_here(shell: Shell):
    code = '''
import json, os, urllib.error, urllib.request
import wmill

def status(url, data=b"{}"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST" if data else "GET")) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refusal:
        return refusal.code, json.load(refusal)

def main():
    links = wmill.get_resume_urls()
    base = os.environ["MILLRACE_API_URL"]
    forged = links["resume"][:-4] + ("AAAA" if not links["resume"].endswith("AAAA") else "BBBB")
    return {"base": base, "forged": status(forged), "resume": status(links["resume"]), "cancel": status(links["cancel"]),
            "page": status(links["approvalPage"], data=None)}
'''
    done = shell.run(shell.flow("links", flow(python("a", code))))
    run_id, result = done["run"], done["result"]
    assert result["forged"][0] == 403 and result["forged"][1]["message"] == "the token is not signed by this step API"
    assert result["resume"] == [200, {"ok": True}] and result["cancel"] == [200, {"ok": True}]
    page = result["page"][1]
    assert result["page"][0] == 200 and (page["run"], page["step"]) == (run_id, "a")
    assert page["resume"].startswith(f"{result['base']}/v1/resume/")
    assert page["cancel"].startswith(f"{result['base']}/v1/cancel/")


def test_resuming_an_unknown_a_finished_or_a_running_run_is_refused(shell: Shell):
    assert "no run 'nope'" in shell("resume", "nope").err
    done = shell.run(shell.flow("quick", flow(python("a", "def main():\n    return 1"))))
    for command in (("resume", done["run"]), ("cancel", done["run"])):
        refused = shell(*command)
        assert refused.code == 2 and f"run '{done['run']}' already ended (succeeded)" in refused.err
    assert shell.record(done["run"])["phase"] == "Succeeded"


def test_a_resume_payload_that_is_not_json_is_refused(shell: Shell):
    suspended = shell.run(shell.flow("wait", flow(python("a", "def main():\n    return 1", options=APPROVE),
                                                  python("b", "def main():\n    return 2"))))
    refused = shell("resume", suspended["run"], "--payload", "{yes")
    assert refused.code == 2 and "--payload is not JSON" in refused.err
    assert shell.record(suspended["run"])["phase"] == "Suspended"


def test_every_approval_is_counted_and_the_next_step_sees_them(shell: Shell):
    waits = "      suspend: {required_events: 2}\n"
    text = flow(python("ask", "def main():\n    return 1", options=waits),
                python("act", "def main(r, rs, who):\n    return [r, rs, who]",
                       "{r: {type: javascript, expr: resume}, rs: {type: javascript, expr: resumes},"
                       " who: {type: javascript, expr: approvers}}"))
    run_id = shell.run(shell.flow("two", text))["run"]
    assert shell("resume", run_id, "--payload", '{"ok": 1}', "--approver", "ann").code == 0
    assert shell.record(run_id)["phase"] == "Suspended"
    done = shell("resume", run_id, "--payload", '{"ok": 2}', "--approver", "bob", "--output", "json").json()
    assert done["result"] == [{"ok": 2}, [{"ok": 1}, {"ok": 2}], ["ann", "bob"]]


def test_an_approval_after_the_timeout_fails_the_run(shell: Shell):
    run_id = shell.run(shell.flow("late", flow(python("a", "def main():\n    return 1", options=APPROVE),
                                              python("b", "def main():\n    return 2"))))["run"]
    time.sleep(1.1)
    late = shell("resume", run_id, "--payload", '{"ok": true}', "--output", "json")
    assert late.code == 1
    # Windmill checks the approvals as it starts the next step: the refusal is that step's failure.
    assert late.json()["error"]["name"] == "SuspendedTimedOut" and late.json()["error"]["step_id"] == "b"
    b = shell.record(run_id)["steps"]["b"]
    assert (b["phase"], b["attempts"]) == ("Failed", 0)


def test_continue_on_disapprove_timeout_goes_on_without_a_resume(shell: Shell):
    lenient = "      suspend: {required_events: 1, timeout: 1, continue_on_disapprove_timeout: true}\n"
    run_id = shell.run(shell.flow("lenient", flow(
        python("a", "def main():\n    return 1", options=lenient),
        python("b", "def main(r):\n    return {'resume': r}", "{r: {type: javascript, expr: resume}}"))))["run"]
    time.sleep(1.1)
    # Past the deadline an approval no longer counts: the run goes on, and (Windmill:
    # worker_flow.rs push_next_flow_job) the next step's resume is the timeout error.
    done = shell("resume", run_id, "--payload", '{"late": true}', "--output", "json")
    assert done.code == 0
    assert done.json()["result"] == {"resume": {"error": {"message": "Timed out waiting to be resumed",
                                                          "name": "SuspendedTimedOut"}}}


# --- states and variables ---------------------------------------------------------------


def test_a_state_that_is_not_json_fails_the_step_with_a_message_naming_the_file(shell: Shell):
    state = shell.home / "state" / "corrupt" / "a.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json", encoding="utf-8")
    text = flow(python("a", "import wmill\ndef main():\n    return wmill.get_state()"))
    failed = shell.run(shell.flow("corrupt", text))
    assert failed["phase"] == "Failed" and failed["error"]["name"] == "StepApiError"
    assert f"{state} is not JSON" in failed["error"]["message"]


def test_a_stored_variable_that_is_not_json_is_named_by_the_command_line(shell: Shell):
    stored = shell.home / "variables" / "u" / "me" / "broken.json"
    stored.parent.mkdir(parents=True)
    stored.write_text("nope", encoding="utf-8")
    for argv in (("variable", "get", "u/me/broken"), ("variable", "list")):
        refused = shell(*argv)
        assert refused.code == 2 and f"error: {stored} is not JSON" in refused.err


def test_a_state_value_that_is_not_json_is_refused(shell: Shell):
    text = flow(python("py", "import wmill\ndef main():\n    wmill.set_state({1, 2})", options="      continue_on_error: true\n"),
                bash("sh", 'curl -s -X PUT -H "Authorization: Bearer $MILLRACE_TOKEN" -d \'{"value": nope\' '
                           '"$MILLRACE_API_URL/v1/state"'))
    done = shell.run(shell.flow("bad-state", text))
    steps = shell.record(done["run"])["steps"]
    assert steps["py"]["error"]["message"] == "Object of type set is not JSON serializable"
    refusal = json.loads(done["result"])
    assert refusal["error"] == "Invalid" and "not a valid Value" in refusal["message"]
    assert not (shell.home / "state" / "bad-state").exists()


def test_states_persist_across_runs_of_the_same_flow_and_step_also_from_bash(shell: Shell):
    counter = bash("count", '''
api() { curl -sf -H "Authorization: Bearer $MILLRACE_TOKEN" "$@"; }
n=$(api "$MILLRACE_API_URL/v1/state" | python3 -c 'import json,sys; print((json.load(sys.stdin)["value"] or 0) + 1)')
api -X PUT -d "{\\"value\\": $n}" "$MILLRACE_API_URL/v1/state" > /dev/null
echo "$n"
''')
    path = shell.flow("counter", flow(counter))
    assert [shell.run(path)["result"] for _ in range(3)] == ["1", "2", "3"]  # bash results are its last line
    # A bare flow file is named by its file: another flow has a state of its own.
    assert shell.run(shell.flow("other", flow(counter)))["result"] == "1"


@pytest.mark.parametrize("transform, message", [
    ('{v: {type: javascript, expr: "variable(\'u/me/nope\')"}}', "variable not found: u/me/nope"),
    ('{v: {type: static, value: "$var:u/me/nope"}}', "variable 'u/me/nope' not found"),
    ('{v: {type: static, value: "$res:f/team/nope"}}', "resource 'f/team/nope' not found"),
])
def test_a_missing_variable_or_resource_in_a_transform_names_its_path(shell: Shell, transform: str, message: str):
    failed = shell.run(shell.flow("missing", flow(python("a", "def main(v):\n    return v", transform))))
    assert failed["exit"] == 1 and message in failed["error"]["message"]
    assert failed["error"]["message"].startswith("input_transforms.v: ")


def test_a_missing_variable_read_by_a_step_names_its_path(shell: Shell):
    text = flow(python("a", "import wmill\ndef main():\n    return wmill.get_variable('u/me/absent')"))
    failed = shell.run(shell.flow("absent", text))
    assert "no variable at path 'u/me/absent'" in failed["error"]["message"]
    missing = shell("variable", "get", "u/me/absent")
    assert missing.code == 1 and "no variable at path 'u/me/absent'" in missing.err


def test_variables_and_resources_from_the_command_line_reach_transforms_and_steps(shell: Shell):
    assert shell("variable", "set", "u/me/greeting", "hello", "--description", "d").code == 0
    assert shell("resource", "set", "f/team/db", '{"host": "db", "port": 5432}', "--type", "postgresql").code == 0
    assert shell("variable", "get", "u/me/greeting").out == "hello\n"
    assert json.loads(shell("resource", "get", "f/team/db").out) == {"host": "db", "port": 5432}
    assert shell("variable", "list").out == 'u/me/greeting\t"hello"\td\n'
    assert shell("resource", "list").out == "f/team/db\tpostgresql\t\n"
    text = flow(
        python("a", "import wmill\ndef main(g, s, db, port):\n    wmill.set_variable('u/me/later', g + '!')\n"
                    "    return [g, s, db, port, wmill.get_resource('f/team/db')['host']]",
               '{g: {type: javascript, expr: "variable(\'u/me/greeting\')"}, s: {type: static, value: "$var:u/me/greeting"},'
               ' db: {type: static, value: "$res:f/team/db"}, port: {type: javascript, expr: "resource(\'f/team/db\').port"}}'),
        # Transforms read the store when the step starts: they see what an earlier step set.
        python("b", "def main(later):\n    return later", '{later: {type: javascript, expr: "variable(\'u/me/later\')"}}'))
    done = shell.run(shell.flow("data", text))
    assert done["phase"] == "Succeeded", done
    assert shell.record(done["run"])["steps"]["a"]["result"] == ["hello", "hello", {"host": "db", "port": 5432}, 5432, "db"]
    assert done["result"] == "hello!"


def test_secret_values_stay_out_of_output_run_records_and_errors(shell: Shell):
    assert shell("variable", "set", "u/me/token", "-", "--secret", stdin=SECRET + "\n").code == 0
    assert SECRET not in shell("variable", "list").out and "(secret)" in shell("variable", "list").out
    assert SECRET not in shell("variable", "get", "u/me/token").out
    assert shell("variable", "get", "u/me/token", "--reveal").out == SECRET + "\n"
    text = flow(
        python("leak", "def main(t):\n    print('the token is', t)\n    return {'token': t, 'n': 1}",
               '{t: {type: javascript, expr: "variable(\'u/me/token\')"}}'),
        # The flow still has the real value: redaction is of what is shown and stored.
        python("check", "def main(got, want):\n    assert got == want\n    raise RuntimeError('bad token ' + got)",
               '{got: {type: javascript, expr: results.leak.token}, want: {type: static, value: "$var:u/me/token"}}'))
    path = shell.flow("leak", text)
    for output in ("text", "json"):
        outcome = shell("run", path, "--output", output)
        assert outcome.code == 1
        assert SECRET not in outcome.out + outcome.err and f"bad token {MASK}" in outcome.out + outcome.err
    for record in (shell.home / "runs").glob("*/run.json"):
        text = record.read_text(encoding="utf-8")
        assert SECRET not in text and MASK in text
        run_id = record.parent.name
        shown = shell("show", run_id)
        assert SECRET not in shown.out + shown.err and f'"token": "{MASK}"' in shown.out
        assert shell.record(run_id)["steps"]["leak"]["result"] == {"token": MASK, "n": 1}


def test_a_secret_quoted_by_an_expression_error_is_masked_in_the_live_view(shell: Shell):
    shell("variable", "set", "u/me/token", SECRET, "--secret")
    text = flow(python("a", "def main(v):\n    return v", '{v: {type: javascript, expr: "JSON.parse(variable(\'u/me/token\'))"}}'))
    failed = shell("run", shell.flow("quoted", text))
    assert failed.code == 1 and "is not valid JSON" in failed.err
    assert SECRET not in failed.out + failed.err


def test_a_secret_of_digits_leaves_numbers_in_the_record_alone(shell: Shell):
    DataStore(shell.home).set_variable("u/me/pin", Variable(value="1", is_secret=True))
    done = shell.run(shell.flow("pin", flow(python("a", "def main():\n    return {'n': 1, 'text': 'pin 1'}"))))
    assert done["result"] == {"n": 1, "text": f"pin {MASK}"}
    assert shell.record(done["run"])["startedAt"] > 0


# --- steps ------------------------------------------------------------------------------


def test_a_step_past_its_timeout_is_killed_with_what_it_started(shell: Shell):
    pid_file = shell.home.parent / "child.pid"
    code = (f"import subprocess, time\ndef main():\n    child = subprocess.Popen(['sleep', '60'])\n"
            f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n    time.sleep(60)")
    started = time.monotonic()
    failed = shell.run(shell.flow("slow", flow(python("a", code, options="      timeout: 1\n"))))
    assert time.monotonic() - started < 20
    assert failed["error"] == {"name": "TimeoutError", "step_id": "a", "stack": "",
                               "message": "the step ran past its timeout of 1 s and was killed"}
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # the child may take a moment to be reaped
            os.kill(child, 0)
            time.sleep(0.1)


def test_sleep_delays_the_next_step(shell: Shell):
    text = flow(python("a", "import time\ndef main():\n    return time.time()", options="      sleep: {type: static, value: 1}\n"),
                python("b", "import time\ndef main(then):\n    return time.time() - then",
                       "{then: {type: javascript, expr: results.a}}"))
    done = shell.run(shell.flow("sleepy", text))
    assert done["phase"] == "Succeeded" and done["result"] >= 1.0


def test_early_return_hands_over_a_result_while_the_flow_goes_on(shell: Shell):
    text = flow(python("a", "def main():\n    return 'early'"), python("b", "def main():\n    return 'late'"),
                extra="  early_return: a\n")
    done = shell.run(shell.flow("early", text))
    assert (done["early_result"], done["result"]) == ("early", "late")


def test_a_failure_module_that_fails_leaves_both_errors(shell: Shell):
    text = flow(python("a", "def main():\n    raise KeyError('first')"), extra=(
        "  failure_module:\n    id: failure\n    value:\n      type: rawscript\n      language: python3\n"
        "      input_transforms: {}\n      content: |\n        def main():\n            raise ValueError('second')\n"))
    failed = shell.run(shell.flow("double", text))
    # Windmill: the run's result is the failure module's own (failed) result.
    assert failed["exit"] == 1 and failed["result"]["error"]["name"] == "ValueError"
    assert failed["error"]["name"] == "KeyError" and failed["error"]["step_id"] == "a"
    assert failed["error"]["message"] == "'first' (and the failure module failed: second)"
    assert shell.record(failed["run"])["steps"]["failure"]["error"]["name"] == "ValueError"


def test_every_step_of_a_same_worker_run_shares_one_directory_removed_at_the_end(shell: Shell):
    where = "import os\ndef main():\n    return os.path.realpath('shared')"
    loop = ("    - id: loop\n      value:\n        type: forloopflow\n        parallel: true\n"
            "        iterator: {type: static, value: [1, 2]}\n        modules:\n"
            + python("inner", where).replace("\n    ", "\n        ").replace("    - id", "        - id", 1))
    text = flow(python("a", where), bash("b", "realpath shared"), loop, extra="  same_worker: true\n")
    done = shell.run(shell.flow("shared", text))
    assert done["phase"] == "Succeeded", done
    steps = shell.record(done["run"])["steps"]
    folders = {steps["a"]["result"], steps["b"]["result"], *done["result"]}
    assert len(folders) == 1 and not Path(folders.pop()).exists()
    unshared = shell.run(shell.flow("unshared", flow(python("a", "import os\ndef main():\n    return os.path.exists('shared')"))))
    assert unshared["result"] is False


# --- runs and show ----------------------------------------------------------------------


def test_runs_lists_local_runs_and_show_prints_every_step_result_and_error(shell: Shell):
    assert shell("runs").out == "no runs yet\n"
    text = flow(python("ok", "def main():\n    return {'x': 1}"),
                python("bad", "def main():\n    raise ValueError('nope')"))
    run_id = shell.run(shell.flow("mixed", text))["run"]
    listing = shell("runs").out.splitlines()
    assert listing[0].split() == ["RUN", "FLOW", "PHASE", "STARTED", "DURATION"]
    assert listing[1].split()[:3] == [run_id, "mixed", "Failed"]
    shown = shell("show", run_id).out
    assert f"run {run_id} · flow mixed · failed" in shown
    assert 'result: {"x": 1}' in shown and "error: ValueError: nope" in shown
    assert "no run 'nope'" in shell("show", "nope").err


SELF_APPROVING = '''
import json, urllib.request
import wmill

def main():
    links = wmill.get_resume_urls(approver="ann")
    body = json.dumps({"payload": {"ok": True}}).encode()
    urllib.request.urlopen(urllib.request.Request(links["resume"], data=body, method="POST")).read()
    return "asked"
'''


def test_an_approval_sent_through_its_link_before_the_suspend_lets_the_run_go_on(shell: Shell):
    ask = python("ask", SELF_APPROVING, options="      suspend: {required_events: 1, timeout: 60}\n")
    after = python("after", "def main(r, who):\n    return {'r': r, 'who': who}",
                   "{r: {type: javascript, expr: resume}, who: {type: javascript, expr: approvers}}")
    done = shell.run(shell.flow("selfapprove", flow(ask, after)))
    assert done["phase"] == "Succeeded", done
    assert done["result"] == {"r": {"ok": True}, "who": ["ann"]}


def test_run_wait_serves_the_links_of_a_suspended_run(shell: Shell, tmp_path: Path):
    import subprocess
    import sys
    import urllib.request

    ask = python("ask", "import wmill\n\ndef main():\n    return wmill.get_resume_urls(approver='bob')",
                 options="      suspend: {required_events: 1, timeout: 60}\n")
    after = python("after", "def main(r):\n    return r", "{r: {type: javascript, expr: resume}}")
    path = shell.flow("waiting", flow(ask, after))
    process = subprocess.Popen([sys.executable, "-m", "millrace.cli.main", "run", str(path), "--wait", "--output", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "MILLRACE_HOME": str(shell.home)})
    try:
        def links() -> dict | None:
            for record in (shell.home / "runs").glob("*/run.json"):
                status = json.loads(record.read_text())["status"]
                if status["phase"] == "Suspended":
                    return status["steps"]["ask"]["result"]
            return None

        deadline = time.monotonic() + 60
        while (urls := links()) is None:
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read() if process.poll() else ""
            time.sleep(0.1)
        body = json.dumps({"payload": {"from": "the link"}}).encode()
        urllib.request.urlopen(urllib.request.Request(urls["resume"], data=body, method="POST")).read()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    outcome = json.loads(out)
    assert outcome["phase"] == "Succeeded" and outcome["result"] == {"from": "the link"}, err
