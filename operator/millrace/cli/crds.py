"""`millrace crds`: write the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


HEADER = "# Generated from the pydantic models by `millrace crds` (make crds): do not edit.\n"
DEFAULT_OUT = (Path("crds"), Path("charts/millrace/crds"))


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("crds", help="write the Flow and FlowRun CRDs generated from the models")
    parser.add_argument("--out", type=Path, action="append", default=[],
                        help="a folder to write flow.yaml and flowrun.yaml to (repeatable; "
                             "default: crds/ and charts/millrace/crds/)")


def render(document: dict[str, Any]) -> str:
    import yaml

    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


def write(options: argparse.Namespace) -> int:
    from ..cluster.crds import all_crds

    for folder in options.out or DEFAULT_OUT:
        folder.mkdir(parents=True, exist_ok=True)
        for name, document in all_crds().items():
            (folder / name).write_text(render(document), encoding="utf-8")
            print(folder / name)
    return 0
