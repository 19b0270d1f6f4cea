"""What the account commands (`clients`, `users`) share: running one action against the auth store, turning
refusals into a message and exit status 1, and printing records as a table or as JSON.

Why a table and `--json`: people read the table; scripts and tests parse the JSON, which is the same
shape the admin API returns (auth/accounts.py builds both), so there is one vocabulary.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from pymongo.errors import PyMongoError

from fhir_server.auth.accounts import AccountConflict, AccountError, AccountNotFound
from fhir_server.config import Settings
from fhir_server.db.auth_store import AuthStore
from fhir_server.db.connect import open_database
from fhir_server.db.embedded import EmbeddedStoreError


def fail(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return 1


def run_with_store(prog: str, action: Callable[[AuthStore], Awaitable[int]]) -> int:
    """Open the configured database (db/connect.py), run `action`, and map refusals to exit status 1."""

    async def main() -> int:
        async with open_database(Settings()) as database:
            return await action(AuthStore(database))

    try:
        return asyncio.run(main())
    except AccountError as exc:
        return fail(prog, exc.message)
    except (AccountNotFound, AccountConflict) as exc:
        return fail(prog, str(exc))
    except (PyMongoError, EmbeddedStoreError) as exc:
        return fail(prog, f"cannot reach the database ({exc}); check FHIR_MONGODB_URI / FHIR_DATA_DIR")


def print_json(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], width: int = 60) -> None:
    """Rows as aligned columns (`columns` = (key, heading) pairs); long cells are cut to `width`."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    cells = [[c if len(c) <= width else c[: width - 1] + "…" for c in line] for line in cells]
    headings = [heading for _, heading in columns]
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(headings)]
    print("  ".join(h.ljust(w) for h, w in zip(headings, widths)).rstrip())
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    if not rows:
        print("(none)")


def print_record(record: dict[str, Any]) -> None:
    """One record as `key: value` lines (lists one item per line, JSON objects as JSON)."""
    width = max(len(k) for k in record)
    for key, value in record.items():
        if isinstance(value, dict):
            text = orjson.dumps(value).decode()
        elif isinstance(value, list) and value:
            text = ("\n" + " " * (width + 2)).join(str(v) for v in value)
        else:
            text = _cell(value)
        print(f"{key.ljust(width)}  {text}")
