"""Shared pydantic configuration for documents that cross a boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class OpenFlowModel(BaseModel):
    """OpenFlow documents keep Windmill's field names verbatim.

    Unknown fields are kept (not dropped) so that validation can report
    them instead of silently ignoring something that changes a result.
    """

    # defer_build: a model's validator is built when it first validates; reading a flow builds
    # OpenFlow's (which holds every other one) instead of one per model class at import.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class KubeModel(BaseModel):
    """Kubernetes-facing documents use camelCase on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid"
    )
