"""`kubectl millrace` takes kubectl's options before its command or after it."""

from __future__ import annotations

import pytest

from millrace.cli.kubectl.main import parser


@pytest.mark.parametrize("argv", [["-n", "ns", "--context", "c", "get"], ["get", "-n", "ns", "--context", "c"],
                                  ["--context", "c", "get", "--namespace", "ns"]])
def test_connection_options_count_before_and_after_the_command(argv: list[str]) -> None:
    options = parser().parse_args(argv)
    assert (options.namespace, options.context, options.kubeconfig) == ("ns", "c", None)


def test_the_help_is_the_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    assert capsys.readouterr().out.startswith("usage: kubectl millrace")


def test_commands_that_act_on_local_files_are_not_the_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["variable", "set", "f/x", "1"])
    assert "invalid choice: 'variable'" in capsys.readouterr().err
