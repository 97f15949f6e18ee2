"""Steps that run any program in a container image: Windmill's `# sandbox <image>` bash steps.

Windmill runs "non-supported languages" through bash: a bash script whose
header has the annotation `# sandbox <image>` runs its body with that image's
`/bin/sh`, its arguments by position as a bash script's (`name="$1"` lines).
OpenFlow has no image field, so the annotation, part of the script's content,
is the one shape a Windmill export keeps. millrace runs such a step as the
`program` runtime language: the image and the command (the body) come from the
content, and the arguments are also in ./args.json for programs that read JSON.

The header is the script's first lines that are comments or blank. Windmill
reads two other bash annotations there, which millrace does not run: a bare
`# sandbox` (the script itself under nsjail) and `# docker` (the script drives
a Docker daemon mounted into the worker). Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .languages import Language

SANDBOX = re.compile(r"^#[ \t]*sandbox(?:[ \t]+(?P<image>.*?))?[ \t]*$")
DOCKER = re.compile(r"^#[ \t]*docker[ \t]*$")
# An image reference: [registry[:port]/]name[:tag][@digest], lower-case name components.
IMAGE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
                   r"(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+:[a-fA-F0-9]{32,})?$")


@dataclass(frozen=True)
class Annotations:
    sandbox: bool = False  # a `# sandbox` line, with or without an image
    image: str | None = None  # what follows `# sandbox`, as written
    docker: bool = False


def header(code: str) -> list[str]:
    """The script's leading lines that are comments or blank, stripped."""
    lines: list[str] = []
    for line in code.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        lines.append(stripped)
    return lines


def parse(code: str) -> Annotations:
    sandbox, image, docker = False, None, False
    for line in header(code):
        match = SANDBOX.match(line)
        if match:
            sandbox, image = True, match.group("image") or None
        docker = docker or bool(DOCKER.match(line))
    return Annotations(sandbox, image, docker)


def image(code: str) -> str | None:
    """The image a bash step runs in, or None for a plain bash step."""
    return parse(code).image


def step_language(language: Language, code: str) -> Language:
    """What runs a step of `language` (a runtime language) with this code: a bash step naming an image is a program."""
    return "program" if language == "bash" and image(code) is not None else language


def command(code: str) -> str:
    """The body the image's shell runs: the script without its header."""
    return "\n".join(code.splitlines()[len(header(code)):]).strip()


@dataclass(frozen=True)
class Finding:
    message: str
    warning: bool = False


def findings(code: str) -> list[Finding]:
    """What validation says about a bash step's annotations (the field is the step's content)."""
    found = parse(code)
    out: list[Finding] = []
    if found.image is not None:
        if not IMAGE.match(found.image):
            out.append(Finding(f"'# sandbox {found.image}': '{found.image}' is not an image reference "
                               "(such as alpine:3.20 or registry.example.com/tool@sha256:...)"))
        if not command(code):
            out.append(Finding(f"'# sandbox {found.image}' has no command: Windmill then runs the image's "
                               "ENTRYPOINT and CMD, which millrace cannot read (it never pulls the image); "
                               "write the command after the header"))
    elif found.sandbox:
        out.append(Finding("'# sandbox' without an image runs the script under nsjail in Windmill; millrace "
                           "runs it as a plain bash step, not sandboxed (name an image to run it in one: "
                           "'# sandbox alpine:3.20')", warning=True))
    if found.docker:
        out.append(Finding("'# docker': Windmill then manages the container the script starts through a Docker "
                           "socket mounted into its worker; millrace has no Docker daemon and runs the script as "
                           "plain bash (use '# sandbox <image>' to run a step in an image)", warning=True))
    return out
