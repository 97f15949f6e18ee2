"""Secrets masked in text, JSON documents and step outcomes."""

from __future__ import annotations

from millrace.runtime.protocol import StepError, StepOutcome
from millrace.runtime.redact import MASK, redact, redact_json, redact_outcome, unmask


def test_every_occurrence_is_masked_and_the_longest_secret_first():
    assert redact("pw=abc abcdef abc", ["abc", "abcdef"]) == f"pw={MASK} {MASK} {MASK}"


def test_empty_secrets_change_nothing():
    assert redact("text", ["", *[]]) == "text"


def test_json_documents_are_masked_in_strings_keys_and_escapes():
    record = {"input": {"token": 's3"cr\u00e9t'}, 's3"cr\u00e9t': 1}
    assert redact_json(record, ['s3"cr\u00e9t']) == {"input": {"token": MASK}, MASK: 1}


def test_outcomes_lose_secrets_in_logs_and_errors_but_keep_results():
    outcome = StepOutcome(ok=False, result="hunter2", logs="got hunter2\n",
                          error=StepError(name="E", message="bad hunter2", stack="at hunter2"))
    clean = redact_outcome(outcome, ["hunter2"])
    assert clean.logs == f"got {MASK}\n" and clean.error == StepError(name="E", message=f"bad {MASK}", stack=f"at {MASK}")
    assert clean.result == "hunter2"


def test_numbers_stay_numbers_whatever_the_secret():
    record = {"startedAt": 1234.5, "steps": [{"result": "pin 1234"}], "n": 12}
    assert redact_json(record, ["1234", "12"]) == {"startedAt": 1234.5, "steps": [{"result": f"pin {MASK}"}], "n": 12}


def test_unmask_puts_back_only_what_masks_into_the_record():
    real = {"args": {"pw": "hunter2", "n": 1}, "steps": [{"result": "got hunter2"}, {"result": "x"}], "hunter2": "k"}
    recorded = redact_json(real, ["hunter2"])
    assert unmask(recorded, real, ["hunter2"]) == real
    # What changed since the real copy was kept stays as recorded.
    changed = {**recorded, "steps": [{"result": f"now {MASK}"}, {"result": "y"}], "userState": {"a": 1}}
    assert unmask(changed, real, ["hunter2"]) == {**real, "steps": [{"result": f"now {MASK}"}, {"result": "y"}],
                                                  "userState": {"a": 1}}
    assert unmask(recorded, None, ["hunter2"]) == recorded


def test_the_cluster_records_masks_and_puts_back_the_real_values_it_kept():
    from millrace.cluster.secrecy import Secrecy

    secrecy = Secrecy(kube=None)  # type: ignore[arg-type] - record and restore make no API call
    real = {"steps": {"a": {"result": "token hunter2"}}, "args": {"n": 1}}
    recorded = secrecy.record("uid-1", "status", real, ["hunter2"])
    assert recorded == {"steps": {"a": {"result": f"token {MASK}"}}, "args": {"n": 1}}
    assert secrecy.restore("uid-1", "status", recorded, ["hunter2"]) == real
    # Another run, or this one after a restart (nothing kept), sees the masks.
    assert secrecy.restore("uid-2", "status", recorded, ["hunter2"]) == recorded
    secrecy.forget("uid-1")
    assert secrecy.restore("uid-1", "status", recorded, ["hunter2"]) == recorded
