"""Keyset paging (search.html#paging): the `next` link carries the sort values of the page's last entry,
so a walk while data changes never repeats an entry nor skips one that existed when it began."""

from __future__ import annotations

import base64
from typing import Any

import bson
from bson.errors import BSONError

from fhir_server import errors
from fhir_server.db.mongo_store import CODEC_OPTIONS

MAX_CURSOR = 2048
SortSpec = list[tuple[str, int]]  # (field, 1 | -1), always ending with ("_id", 1)


def encode_cursor(values: list[Any], resource_type: str | None = None) -> str:
    payload = bson.encode({"v": values, "t": resource_type}, codec_options=CODEC_OPTIONS)
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[list[Any], str | None]:
    if len(cursor) > MAX_CURSOR:
        raise errors.invalid("_cursor is not a cursor this server issued", "_cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = bson.decode(raw, codec_options=CODEC_OPTIONS)
        values, resource_type = doc["v"], doc.get("t")
        if not isinstance(values, list):
            raise ValueError
    except (ValueError, KeyError, BSONError, TypeError):
        raise errors.invalid("_cursor is not a cursor this server issued", "_cursor") from None
    return values, resource_type


def field_value(doc: dict[str, Any], field: str) -> Any:
    node: Any = doc
    for part in field.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def after(sort: SortSpec, last: list[Any]) -> dict[str, Any]:
    """The filter for entries strictly after `last` in `sort` order (MongoDB orders null/missing first)."""
    if len(last) != len(sort):
        raise errors.invalid("_cursor does not belong to this search", "_cursor")
    options: list[dict[str, Any]] = []
    for i, (field, direction) in enumerate(sort):
        equal = {f: ({"$eq": None} if v is None else v) for (f, _), v in zip(sort[:i], last[:i], strict=True)}
        value = last[i]
        if direction == 1:
            beyond: dict[str, Any] | None = {"$ne": None} if value is None else {"$gt": value}
        else:
            beyond = None if value is None else {"$lt": value}
        if beyond is None:
            continue
        clause = {**equal, field: beyond}
        if direction == -1 and value is not None:
            options.append({**equal, field: {"$eq": None}})  # nulls sort last when descending
        options.append(clause)
    return options[0] if len(options) == 1 else {"$or": options}
