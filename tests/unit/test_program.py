"""Program steps' annotations (runtime/program.py): Windmill's `# sandbox <image>` and its other bash annotations."""

from __future__ import annotations

from millrace.runtime import program


def test_the_image_is_read_from_the_header_only() -> None:
    assert program.image("# shellcheck shell=bash\n\n# sandbox python:3.12-slim\nname=\"$1\"\n") == "python:3.12-slim"
    assert program.image("echo hi\n# sandbox python:3.12-slim\n") is None
    assert program.image("#sandbox   ghcr.io/org/tool@sha256:" + "a" * 64 + "  \necho\n") == "ghcr.io/org/tool@sha256:" + "a" * 64
    assert program.step_language("bash", "# sandbox alpine:3.20\necho\n") == "program"
    assert program.step_language("bash", "# sandbox\necho\n") == "bash"
    assert program.step_language("python3", "# sandbox alpine:3.20\n") == "python3"


def test_findings() -> None:
    assert program.findings("# sandbox alpine:3.20\necho hi\n") == []
    assert program.findings("echo plain\n") == []
    [empty] = program.findings("# sandbox alpine:3.20\n#\n\n")
    assert not empty.warning and "has no command" in empty.message
    [bad] = program.findings("# sandbox Alpine Latest\necho\n")
    assert not bad.warning and "'Alpine Latest' is not an image reference" in bad.message
    bare, docker = program.findings("# sandbox\n# docker\necho\n")
    assert bare.warning and docker.warning
