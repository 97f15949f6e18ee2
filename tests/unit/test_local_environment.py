"""What a local step's environment starts from (local/environment.py)."""

from __future__ import annotations

from millrace.local.environment import base_environment


def test_no_secret_of_the_engine_is_passed() -> None:
    env = base_environment({"PATH": "/bin", "HOME": "/home/u", "AWS_SECRET_ACCESS_KEY": "k", "MILLRACE_TOKEN": "t"})
    assert "AWS_SECRET_ACCESS_KEY" not in env and "MILLRACE_TOKEN" not in env
    assert env["PATH"] == "/bin" and env["HOME"] == "/home/u"


def test_without_a_proxy_no_proxy_list_is_added() -> None:
    assert "NO_PROXY" not in base_environment({"PATH": "/bin"})


def test_a_passed_proxy_skips_loopback_where_the_step_api_listens() -> None:
    env = base_environment({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "corp.example,localhost", "no_proxy": "intra"})
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    # The user's own exceptions are kept, from both spellings, and both spellings agree.
    assert env["NO_PROXY"] == env["no_proxy"] == "corp.example,localhost,intra,127.0.0.1"
