"""The API's values on the wire: how large an id, a page and a search term may be
(checked before any reaches the database), and how a moment is written."""

from __future__ import annotations

import datetime as dt

# PostgreSQL's integer columns, every id among them, are 32-bit (SQLite's take 64):
# one bound for both, so that no id answers differently on the two databases.
INT_MAX = 2**31 - 1
# Checked before converting: cheap on the callback's hot path, and Python refuses
# to convert more than 4,300 digits at all.
MAX_DIGITS = len(str(INT_MAX))
# The largest offset, (MAX_PAGE - 1) * MAX_PAGE_SIZE, stays far inside the 64-bit
# OFFSET both databases take.
MAX_PAGE = INT_MAX
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 25
# Longer than any name, and far below SQLite's limit on a LIKE pattern (50,000
# bytes, which escaped wildcards and four-byte characters approach eight times faster).
MAX_SEARCH_LENGTH = 1024


def bounded_int(text: str, low: int, high: int) -> int | None:
    """``text`` as a decimal integer between ``low`` and ``high`` (at most INT_MAX), or None."""
    if len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_id(text: str) -> int | None:
    """The id in a URL or a filter, or None when no row can have it (answered 404)."""
    return bounded_int(text, 1, INT_MAX)


def api_datetime(value: dt.datetime | None, timespec: str = "auto") -> str | None:
    """A stored (UTC) moment as the API writes it, as AWX does: ``2026-12-01T19:36:48.020296Z``."""
    return value.isoformat(timespec=timespec).replace("+00:00", "Z") if value is not None else None
