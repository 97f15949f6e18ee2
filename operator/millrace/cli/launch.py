"""The `millrace` command's entry point.

`millrace run` starts the fork server of python3 steps before anything else: it boots (about
0.1 s) on another core while the CLI imports its models and checks the flow, instead of making
the first step wait for it. A flow with no python3 step closes it unused (cli/main.py).
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    argv = sys.argv[1:]
    forks = None
    if argv[:1] == ["run"]:
        from ..local.environment import started_fork_server

        forks = started_fork_server(os.environ)
    from .main import main as cli_main

    return cli_main(argv, forks=forks)


if __name__ == "__main__":
    sys.exit(main())
