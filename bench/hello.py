"""The ceiling: a bare Tornado app in one process, answering every request with a small JSON body.

``python bench/hello.py --port P``. Same Tornado, same interpreter, same
machine as the server under test, no access log (the server logs its requests
at INFO; see bench/NOTES.md).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import tornado.web
from tornado.httpserver import HTTPServer


class HelloHandler(tornado.web.RequestHandler):
    def _hello(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish('{"hello": "world"}')

    def get(self, *_args: str) -> None:
        self._hello()

    def post(self, *_args: str) -> None:
        self._hello()


async def main(port: int) -> None:
    server = HTTPServer(tornado.web.Application([(r"/(.*)", HelloHandler)]))
    server.listen(port, "127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"hello listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
