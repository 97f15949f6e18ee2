"""The Hub catalog shipped with millrace: scripts that steps reference as `hub/<id>/<app>/<name>`.

Windmill resolves such paths from its Hub; millrace from a catalog: the
folder below (package data, laid out as a script folder: `scripts/hub/<id>/<app>/<name>.py`),
and in the cluster first the ConfigMaps of the chart's catalog namespace
(docs/dependencies.md, "Hub scripts"). The ids of the shipped scripts (900001 and up)
are millrace's own, so no path names a different script than the Hub's.
"""

from __future__ import annotations

from pathlib import Path

HUB_PREFIX = "hub/"
CATALOG_ROOT = Path(__file__).resolve().parent / "scripts"


def is_hub_path(path: str) -> bool:
    return path.startswith(HUB_PREFIX)
