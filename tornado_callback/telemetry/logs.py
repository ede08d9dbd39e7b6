"""Where log records go and how they read: one line each, as text or as JSON (README, "Logs").

No secret is logged: our own records name ids, never a key, a password or a token;
the access log leaves secret-looking query parameters out (http/access_log.py),
Tornado's own records the header values and query parameters they quote;
and the libraries that would log statements with their parameters, or rows
(a template's host_config_key among them), are held above DEBUG whatever the level.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log data at their INFO or DEBUG: SQLAlchemy statements, parameters and rows;
# aiosqlite the calls it runs, with their arguments; ansible-runner a run's settings.
QUIET_LIBRARIES = {"sqlalchemy": logging.WARNING, "alembic": logging.WARNING, "aiosqlite": logging.INFO,
                   "ansible_runner": logging.INFO, "asyncpg": logging.INFO}


class TornadoSecretsOut(logging.Filter):
    """Tornado's own records quote what they refused: "Malformed HTTP message" the header
    (``Invalid header value 'Bearer TOKEN\\x01'``: a credential a client mistyped), an
    uncaught exception's record the request's URI (a host_config_key a client put in the
    query string). The records keep what was wrong, not those values."""

    QUOTED_HEADER = re.compile(r"(Invalid header (?:name|value)) .*", re.DOTALL)
    # A query parameter whose name says key, password, token or secret, as access_log.py knows them.
    SECRET_QUERY_VALUE = re.compile(r"([?&;][^=&;\s]*(?:key|passw|token|secret)[^=&;\s]*=)[^&;\s'\")]*",
                                    re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._cleaned(arg) for arg in record.args)
        return True

    def _cleaned(self, arg: object) -> object:
        if isinstance(arg, str | Exception):
            text = str(arg)
        elif hasattr(arg, "uri"):  # a request, which Tornado writes with %r
            text = repr(arg)
        else:
            return arg
        cleaned = self.SECRET_QUERY_VALUE.sub(r"\1REDACTED", self.QUOTED_HEADER.sub(r"\1 (not logged)", text))
        return arg if cleaned == text else cleaned


TORNADO_SECRETS_OUT = TornadoSecretsOut()
# Tornado's loggers whose records quote requests (tornado.access is ours: http/access_log.py).
TORNADO_LOGGERS = ("tornado.general", "tornado.application")


class OneLineFormatter(logging.Formatter):
    """The text format, where a line break in a message (a value a caller sent, in an
    exception's text) is written ``\\n``: it cannot forge a record of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        if "\n" in line or "\r" in line:
            line = line.replace("\r", "\\r").replace("\n", "\\n")
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "INFO", log_format: str = "text") -> None:
    """Every record at ``level`` or above to stderr, as ``log_format`` (text or json) says."""
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter() if log_format == "json" else OneLineFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name, least in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(max(least, logging.getLevelName(level)))
    for name in TORNADO_LOGGERS:
        logging.getLogger(name).addFilter(TORNADO_SECRETS_OUT)  # once: the same filter is not added twice
    # Every request is logged (tornado.access). What the formats do not show
    # need not be collected for each record: the caller's frame, the thread and
    # process names (the logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
