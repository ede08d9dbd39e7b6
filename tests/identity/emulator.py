"""Local cloud metadata services: AWS's IMDSv2 and GCP's metadata server, on loopback.

Each is a real HTTP server (http.server, one thread) serving what
tests/identity/cloud.py's signers make, and refusing what the real services
refuse: an IMDS read without a session token from ``PUT /latest/api/token``
(401, as an instance that requires IMDSv2 answers), a GCP request without
``Metadata-Flavor: Google`` (403). So a client that passes here sends what
the real services want. Use them in a ``with`` block: the thread is stopped
and joined at its end.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.identity.cloud import AwsSigner, GcpSigner

AWS_TOKEN_PATH = "/latest/api/token"
AWS_IDENTITY_PATH = "/latest/dynamic/instance-identity/"
GCP_IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
# IMDSv2 accepts session token lifetimes from one second to six hours.
AWS_TOKEN_TTL = range(1, 21601)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class LoopbackServer:
    """An HTTP server on 127.0.0.1 that records each request and answers with ``answer``."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._httpd = HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        # A short poll: shutdown() waits for the loop to look, and every test stops two servers.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name=type(self).__name__)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def answer(self, request: Request) -> tuple[int, str]:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, split.path, parse_qs(split.query),
                          {name.lower(): value for name, value in self.headers.items()}, self.rfile.read(length))
        owner: LoopbackServer = self.server.owner  # type: ignore[attr-defined]
        owner.requests.append(request)
        status, text = owner.answer(request)
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on ``requests``, not on stderr."""


class AwsMetadata(LoopbackServer):
    """IMDSv2 of one instance: its document (``document``, replaceable) signed by ``signer``."""

    def __init__(self, signer: AwsSigner, instance_id: str = "i-0123456789abcdef0") -> None:
        super().__init__()
        self.signer = signer
        self.document = signer.document(instance_id)
        self._tokens: dict[str, float] = {}

    def answer(self, request: Request) -> tuple[int, str]:
        if request.path == AWS_TOKEN_PATH:
            return self._session(request)
        if not request.path.startswith(AWS_IDENTITY_PATH):
            return 404, "Not Found"
        if request.method != "GET":
            return 405, "Method Not Allowed"
        expires = self._tokens.get(request.headers.get("x-aws-ec2-metadata-token", ""))
        if expires is None or expires < time.monotonic():
            return 401, "Unauthorized"
        item = request.path.removeprefix(AWS_IDENTITY_PATH)
        if item == "document":
            return 200, self.document
        if item == "signature":
            return 200, self.signer.signature(self.document)
        if item == "rsa2048":
            return 200, self.signer.rsa2048(self.document)
        return 404, "Not Found"

    def _session(self, request: Request) -> tuple[int, str]:
        if request.method != "PUT":
            return 405, "Method Not Allowed"
        ttl = request.headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or int(ttl) not in AWS_TOKEN_TTL:
            return 400, "Bad Request"
        token = secrets.token_urlsafe(40)
        self._tokens[token] = time.monotonic() + int(ttl)
        return 200, token


class GcpMetadata(LoopbackServer):
    """The GCP metadata server of one instance: identity tokens signed by ``signer`` for the
    audience asked. Only ``format=full`` (the one with the instance's facts) is served."""

    def __init__(self, signer: GcpSigner, instance_id: str = "4242424242424242", instance_name: str = "web-1") -> None:
        super().__init__()
        self.signer = signer
        self.instance_id = instance_id
        self.instance_name = instance_name

    def answer(self, request: Request) -> tuple[int, str]:
        if request.headers.get("metadata-flavor") != "Google":
            return 403, "Missing Metadata-Flavor:Google header."
        if request.path != GCP_IDENTITY_PATH:
            return 404, "Not Found"
        audience = request.query.get("audience", [""])[0]
        if not audience:
            return 400, "non-empty audience parameter required"
        if request.query.get("format") != ["full"]:
            return 400, "this emulator serves format=full only"
        return 200, self.signer.token(audience=audience, instance_id=self.instance_id,
                                      instance_name=self.instance_name)

    def audiences(self) -> list[str]:
        """The audience of each identity token asked for, in order."""
        return [r.query.get("audience", [""])[0] for r in self.requests if r.path == GCP_IDENTITY_PATH]
