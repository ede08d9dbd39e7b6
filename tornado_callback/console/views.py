"""What the pages show, worked out from the services' answers: outcomes, filters, ready commands."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tornado.escape import xhtml_escape

# Trace outcomes (API.md section 1) and the badge each is drawn with; anything else is drawn as unknown.
TRACE_OUTCOMES = frozenset({"matched", "ambiguous", "no_match", "skipped", "error", "timeout"})
# The callback's refusals, by the ``msg`` AWX answers them with (API.md section 1).
MSG_NO_MATCH = "No matching host could be found!"
MSG_AMBIGUOUS = "Multiple hosts matched the request!"
# The tail of a job's output a page carries, at most, as the page writes it (escaped, UTF-8): every
# page stays under 100 KB; the API has the whole text.
OUTPUT_TAIL_BYTES = 60_000


# Host names a trace row or an explanation lists: an address shared by a whole fleet matches all of it.
HOSTS_SHOWN = 20


def some_hosts(hosts: Any) -> str:
    """The first HOSTS_SHOWN names, and how many more there are."""
    names = [str(h) for h in hosts or ()]
    more = f" and {len(names) - HOSTS_SHOWN} more" if len(names) > HOSTS_SHOWN else ""
    return ", ".join(names[:HOSTS_SHOWN]) + more


def badge(outcome: Any) -> str:
    """The CSS class of an outcome's badge: never the value itself, which a stored trace carries."""
    return f"badge-{outcome}" if outcome in TRACE_OUTCOMES else "badge-unknown"


@dataclass(frozen=True)
class AttemptFilter:
    """An outcome the attempts can be filtered by, as the audit trail's filters and search express it."""

    label: str
    status_code: str
    msg: str = ""


ATTEMPT_FILTERS = {
    "launched": AttemptFilter("launched", "202"),
    "no_match": AttemptFilter("no match", "400", MSG_NO_MATCH),
    "ambiguous": AttemptFilter("ambiguous", "400", MSG_AMBIGUOUS),
    "refused": AttemptFilter("refused (key, identity)", "403"),
    "rate_limited": AttemptFilter("rate limited", "429"),
}


def attempt_outcome(attempt: Mapping[str, Any]) -> str:
    """An attempt's outcome as a trace outcome (its badge): launched is matched."""
    status, msg = attempt.get("status_code"), attempt.get("msg")
    if status == 202:
        return "matched"
    if msg == MSG_NO_MATCH:
        return "no_match"
    if msg == MSG_AMBIGUOUS:
        return "ambiguous"
    return "error"


def callback_url(base: str, template_id: int) -> str:
    return f"{base}/api/v2/job_templates/{template_id}/callback/"


def curl_line(url: str, key: str | None) -> str:
    """The host's side of a callback as a ready command; a placeholder for who may not see the key."""
    value = shlex.quote(f"host_config_key={key}") if key else '"host_config_key=$HOST_CONFIG_KEY"'
    return f"curl -s -i --data-urlencode {value} {shlex.quote(url)}"


def output_tail(text: str, since: int = 0) -> tuple[str, int]:
    """The output from character ``since`` on, at most its last OUTPUT_TAIL_BYTES once escaped, and
    where it ends. Output full of markup or of wide characters grows when written: cut it to fit."""
    tail = text[max(since, len(text) - OUTPUT_TAIL_BYTES, 0):]
    while len(xhtml_escape(tail).encode()) > OUTPUT_TAIL_BYTES:
        tail = tail[len(tail) // 4 or 1:]  # drop the oldest quarter
    return tail, len(text)
