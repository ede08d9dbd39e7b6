"""telemetry/logs.py: what the configured log writes, for records of ours and of Tornado's."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tornado_callback.http.access_log import log_request
from tornado_callback.telemetry import logs

KEY = "k3y-in-the-url-5d1e"


@pytest.fixture
def configure(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``logs.configure`` on the real root logger, undone afterwards (pytest's own handlers back)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield logs.configure
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in logs.TORNADO_LOGGERS:
        logging.getLogger(name).removeFilter(logs.TORNADO_SECRETS_OUT)


class Crashing(tornado.web.RequestHandler):
    def get(self) -> None:
        raise RuntimeError("a bug")


@pytest.mark.gen_test
async def test_an_uncaught_exception_is_logged_without_the_query_key(configure, capsys) -> None:
    configure("DEBUG", "text")
    sock, port = bind_unused_port()
    # Logged as the server logs its requests (app.make_app).
    server = HTTPServer(tornado.web.Application([("/crash", Crashing)], log_function=log_request))
    server.add_sockets([sock])
    try:
        answer = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/crash?page=2&host_config_key={KEY}",
                                               raise_error=False)
    finally:
        server.stop()
    assert answer.code == 500
    err = capsys.readouterr().err
    assert "ERROR tornado.application: Uncaught exception GET /crash?page=2&host_config_key=REDACTED" in err
    assert "RuntimeError: a bug" in err
    assert KEY not in err


def test_a_line_break_in_a_message_cannot_forge_a_record(configure, capsys) -> None:
    configure("INFO", "text")
    logging.getLogger("tornado_callback.test").warning("resolver x: error: %s", "bad\n2026-12-02 INFO forged: ok")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.rstrip("\n").endswith("resolver x: error: bad\\n2026-12-02 INFO forged: ok")


def test_json_is_one_object_a_line_at_the_level_chosen(configure, capsys) -> None:
    configure("WARNING", "json")
    log = logging.getLogger("tornado_callback.test")
    log.info("not written")
    log.warning("job %s finished: %s", 7, "error\nline two")
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("WARNING", "tornado_callback.test", "job 7 finished: error\nline two")]
    assert records[0]["time"].endswith("+00:00")
