"""A loopback HTTP proxy in front of Azurite's table endpoint that can hold one write.

The crash tests point a worker's connection string (``TableEndpoint``) at the proxy, which
passes every request to Azurite unchanged, except the first one a test asked it to hold
(``hold(predicate, forwarded=...)``):

- ``forwarded=False``: the request is held *before* it reaches Azurite. The write has not
  taken effect, and never will: when released, the connection is closed without forwarding.
- ``forwarded=True``: the request is passed to Azurite and its answer is held. The write took
  effect; the client never learns it (when released, the connection closes without an answer).

While it holds, the proxy sets ``holding`` (like the fake workspace's ``hold_fault``); the test
kills the client, then sets ``release``. The predicate sees a ``TableRequest``: the method, the
path (``/<account>/<table>(PartitionKey='..',RowKey='..')`` for an entity) and the entity JSON
the client sent, so it can match e.g. "the replace that moves a decision to ``acting``".
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["TableProxy", "TableRequest"]

_HOP = frozenset({"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade",
                  "content-length"})
HOLD_LIMIT_S = 60.0          # a held request ends after this even when the test forgets to release it


@dataclass(frozen=True)
class TableRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def table(self) -> str:
        """The table the request is about: ``TriageDecisions`` for ``/acct/TriageDecisions(...)``."""
        parts = self.path.split("?")[0].strip("/").split("/")
        return parts[1].split("(")[0] if len(parts) > 1 else ""

    @property
    def entity(self) -> dict[str, Any]:
        """The entity the client sent ({} for a read or a body that is not a JSON object)."""
        try:
            value = json.loads(self.body) if self.body else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class _Hold:
    predicate: Callable[[TableRequest], bool]
    forwarded: bool


class TableProxy:
    """``TableProxy(azurite.endpoint("table")).start()``; ``url`` is the endpoint to hand out."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._account_path = parts.path.rstrip("/")
        self.holding = threading.Event()
        self.release = threading.Event()
        self.held: TableRequest | None = None
        self.seen: list[tuple[str, str, int | None]] = []    # (method, path, status; None = held)
        self._hold: _Hold | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> TableProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The table endpoint through the proxy (same account path as the upstream's)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._account_path}"

    def connection_string(self, upstream_connection_string: str) -> str:
        """The upstream's connection string with its ``TableEndpoint`` pointing at the proxy."""
        kept = [p for p in upstream_connection_string.split(";") if p and not p.startswith("TableEndpoint=")]
        return ";".join([*kept, f"TableEndpoint={self.url}"]) + ";"

    # --- holding --------------------------------------------------------------------------
    def hold(self, predicate: Callable[[TableRequest], bool], *, forwarded: bool) -> None:
        """Hold the first request matching ``predicate`` (see the module docstring)."""
        with self._lock:
            self._hold = _Hold(predicate, forwarded)
            self.holding.clear()
            self.release.clear()
            self.held = None

    def _take(self, request: TableRequest) -> _Hold | None:
        with self._lock:
            hold = self._hold
            if hold is None or not hold.predicate(request):
                return None
            self._hold = None
            self.held = request
            return hold

    # --- forwarding -----------------------------------------------------------------------
    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self._upstream, timeout=30)

    def forward(self, conn: http.client.HTTPConnection,
                request: TableRequest) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request on ``conn`` (a kept-alive connection to the upstream) and read the answer."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["Host"] = f"{self._upstream[0]}:{self._upstream[1]}"
        conn.request(request.method, request.path, body=request.body or None, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        if answer.will_close:
            conn.close()
        kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP]
        return answer.status, answer.reason, kept, body


class _Handler(BaseHTTPRequestHandler):
    owner: TableProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:   # quiet
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = TableRequest(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
        proxy = self.owner
        hold = proxy._take(request)
        if hold is not None and not hold.forwarded:
            proxy.seen.append((request.method, request.path, None))
            proxy.holding.set()
            proxy.release.wait(HOLD_LIMIT_S)
            self.close_connection = True                       # never forwarded, never answered
            return
        conn = getattr(self, "_upstream_conn", None) or proxy.connect()
        self._upstream_conn = conn                             # one upstream connection per client one
        try:
            status, reason, headers, payload = proxy.forward(conn, request)
        except (OSError, http.client.HTTPException):
            conn.close()
            self.close_connection = True
            return
        proxy.seen.append((request.method, request.path, status))
        if hold is not None:
            proxy.holding.set()
            proxy.release.wait(HOLD_LIMIT_S)
            self.close_connection = True                       # it took effect; nobody hears so
            return
        try:
            self.send_response(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        conn = getattr(self, "_upstream_conn", None)
        if conn is not None:
            conn.close()
        super().finish()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = do_HEAD = do_OPTIONS = _any
