"""Scripts and flows that steps reference by path, loaded before a run.

The planner never reads files: the shell resolves every `script` and `flow`
path a flow mentions into this value first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.flow import OpenFlow
from ..runtime.protocol import Language


@dataclass(frozen=True)
class ScriptSource:
    path: str
    language: Language
    content: str


@dataclass
class Library:
    scripts: dict[str, ScriptSource] = field(default_factory=dict)
    flows: dict[str, OpenFlow] = field(default_factory=dict)
