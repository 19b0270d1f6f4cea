"""Type aliases shared by every layer (no framework types here)."""

from __future__ import annotations

from typing import Any, NewType

JSONObject = dict[str, Any]
ResourceType = NewType("ResourceType", str)
ResourceId = NewType("ResourceId", str)
