"""Write docs/compatibility.md: `python -m millrace.compat.report CORPUS OUT`."""

from __future__ import annotations

import sys
from pathlib import Path

from .corpus import check_corpus, render_markdown


def main(argv: list[str]) -> int:
    corpus, out = Path(argv[0]), Path(argv[1])
    out.write_text(render_markdown(check_corpus(corpus)), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
