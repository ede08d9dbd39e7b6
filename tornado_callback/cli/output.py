"""How commands show what they read: tables that fit the terminal, or ``--json`` for scripts."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

COLUMN_GAP = "  "
ELLIPSIS = "…"
# A table's narrowest column: room for a few characters and the ellipsis.
MIN_COLUMN = 4
# What a shown object's table leaves out: its own address, said by the command, and links.
NOT_SHOWN = frozenset({"type", "url", "related"})


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the objects as the REST API returns them, for scripts")


def print_json(value: Any) -> None:
    # ASCII: a control character a value carries reaches the terminal escaped, never raw.
    print(json.dumps(value, indent=2))


API_MOMENT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")
# C0 and C1 control characters: from a host's variables or a DNS name (a callback's
# values), an escape sequence would drive the reader's terminal.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same in a block of text (a job's output, which a host's values reach too): it keeps its lines and tabs.
TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def moment(text: str | None) -> str:
    """An API moment (``2026-12-01T19:36:48.020296Z``) to the second, as tables show it."""
    found = API_MOMENT.fullmatch(text or "")
    return f"{found[1]}Z" if found else text or ""


def cell(value: Any) -> str:
    """One line of text for a table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    # Variables are YAML or indented JSON text: one line, indentation dropped.
    return CONTROLS.sub("?", " ".join(line.strip() for line in str(value).splitlines()))


def terminal_width() -> int | None:
    """The terminal's columns (``COLUMNS`` first, as shutil reads it); None when the output is
    no terminal: a file or a pipe gets whole cells (``--json`` is the format for scripts)."""
    return shutil.get_terminal_size(fallback=(0, 0)).columns or None


def fitted_widths(natural: Sequence[int], width: int | None) -> list[int]:
    """Column widths that fit ``width``: the widest columns are cut to one cap, found as the
    largest that fits (columns already narrower keep their width)."""
    if width is None:
        return list(natural)
    room = width - len(COLUMN_GAP) * (len(natural) - 1)
    cap = max(natural, default=0)
    while cap > MIN_COLUMN and sum(min(w, cap) for w in natural) > room:
        cap -= 1
    return [min(w, cap) for w in natural]


def clipped(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + ELLIPSIS


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [list(headers)] + [[cell(c) for c in row] for row in rows]
    natural = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    widths = fitted_widths(natural, terminal_width())
    for row in cells:
        print(COLUMN_GAP.join(clipped(c, w).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_listing(args: argparse.Namespace, objects: Sequence[Mapping[str, Any]], headers: Sequence[str],
                  row: Callable[[Mapping[str, Any]], Sequence[Any]]) -> None:
    """The objects as ``--json`` asks, else as a table of one ``row`` each."""
    if args.json:
        print_json(objects)
    else:
        print_table(headers, [row(o) for o in objects])


def print_text(text: str) -> None:
    print(TEXT_CONTROLS.sub("?", text))


def print_fields(obj: Mapping[str, Any], extra: Iterable[tuple[str, Any]] = ()) -> None:
    """One object as a FIELD / VALUE table: its fields as the REST API names them, then ``extra``."""
    print_table(("FIELD", "VALUE"), [
        *((name, moment(value) if isinstance(value, str) else value)
          for name, value in obj.items() if name not in NOT_SHOWN),
        *extra,
    ])
