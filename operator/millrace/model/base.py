"""Shared pydantic configuration for documents that cross a boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class OpenFlowModel(BaseModel):
    """OpenFlow documents keep Windmill's field names verbatim.

    Unknown fields are kept (not dropped) so that validation can report
    them instead of silently ignoring something that changes a result.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class KubeModel(BaseModel):
    """Kubernetes-facing documents use camelCase on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )
