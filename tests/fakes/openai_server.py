"""A fake OpenAI-compatible chat-completions server on loopback, over real HTTP.

It serves the three URL shapes the app can use:

- ``POST /openai/v1/chat/completions``                                   Azure OpenAI v1 endpoint
- ``POST /openai/deployments/{deployment}/chat/completions?api-version=`` Azure OpenAI, versioned
- ``POST /v1/chat/completions``                                          plain OpenAI-compatible

and checks authentication: an ``api-key`` header equal to ``api_key``, or
``Authorization: Bearer <token>`` with a token in ``bearer_tokens``. Every request is recorded
(path, query, headers, JSON body) so tests can assert what was sent. Answers are scripted in
order with the ``answer_*`` methods; when the script is empty the ``default`` verdict is sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

DEFAULT_VERDICT: dict[str, Any] = {
    "category": "NETWORK",
    "confidence": 0.9,
    "is_transient": True,
    "root_cause": "The storage endpoint reset the connection while the job was reading.",
    "recommended_action": "RETRY",
    "suggested_fix": "Retry the run; if it keeps failing, check the storage account's network rules.",
    "parameters": {"num_workers": None, "node_type": None, "spark_conf": []},
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]           # lower-case names
    body: Any

    @property
    def user_message(self) -> str:
        msgs = (self.body or {}).get("messages") or []
        return next((m.get("content", "") for m in msgs if m.get("role") == "user"), "")

    @property
    def system_message(self) -> str:
        msgs = (self.body or {}).get("messages") or []
        return next((m.get("content", "") for m in msgs if m.get("role") == "system"), "")

    @property
    def prompt_text(self) -> str:
        return json.dumps(self.body)


@dataclass
class _Answer:
    status: int = 200
    body: Any = None                  # dict -> JSON; str -> raw text
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeOpenAI:
    """The fake server. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(self, *, api_key: str = "fake-api-key", bearer_tokens: tuple[str, ...] = ("fake-entra-token",),
                 deployment: str = "triage-deployment", model: str = "fake-model") -> None:
        self.api_key = api_key
        self.bearer_tokens = tuple(bearer_tokens)
        self.deployment = deployment
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.default: dict[str, Any] = dict(DEFAULT_VERDICT)
        self._script: deque[_Answer] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True   # headers and body go out in two writes: no 40 ms stall

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                fake._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._send(self, _Answer(404, {"error": {"code": "404", "message": "not found"}}))

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def calls(self) -> int:
        return len(self.requests)

    # --- scripting ------------------------------------------------------------------------
    def _push(self, answer: _Answer) -> "FakeOpenAI":
        with self._lock:
            self._script.append(answer)
        return self

    def answer_verdict(self, verdict: dict[str, Any] | None = None, **changes: Any) -> "FakeOpenAI":
        """A completion whose content is the verdict JSON (the default one, with changes)."""
        content = dict(verdict if verdict is not None else self.default)
        content.update(changes)
        return self._push(_Answer(200, self._completion(json.dumps(content))))

    def answer_content(self, content: str, *, finish_reason: str = "stop", refusal: str | None = None
                       ) -> "FakeOpenAI":
        """A completion with this exact message content (e.g. invalid JSON)."""
        return self._push(_Answer(200, self._completion(content, finish_reason=finish_reason, refusal=refusal)))

    def answer_refusal(self, text: str = "I'm sorry, I cannot help with that.") -> "FakeOpenAI":
        return self._push(_Answer(200, self._completion(None, refusal=text)))

    def answer_invalid_json(self) -> "FakeOpenAI":
        return self.answer_content('{"category": "NETWORK", "confidence": 0.9, "is_trans')

    def answer_truncated(self) -> "FakeOpenAI":
        return self.answer_content('{"category": "NETWORK", "confidence": 0.9, "root_cause": "The sto',
                                   finish_reason="length")

    def answer_content_filter_finish(self) -> "FakeOpenAI":
        return self.answer_content("", finish_reason="content_filter")

    def answer_content_filter(self) -> "FakeOpenAI":
        """Azure's answer when its content filter rejects the prompt (HTTP 400)."""
        return self._push(_Answer(400, {"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": None, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation",
                           "content_filter_result": {"jailbreak": {"filtered": True, "detected": True}}}}}))

    def answer_rate_limited(self, retry_after: float | str | None = 1) -> "FakeOpenAI":
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        return self._push(_Answer(429, {"error": {"code": "429", "message": "Rate limit is exceeded."}}, headers))

    def answer_status(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> "FakeOpenAI":
        return self._push(_Answer(status, body if body is not None else
                                  {"error": {"code": str(status), "message": f"status {status}"}}, headers or {}))

    def answer_server_error(self, status: int = 500) -> "FakeOpenAI":
        return self.answer_status(status)

    def answer_slow(self, delay_s: float, verdict: dict[str, Any] | None = None) -> "FakeOpenAI":
        """The verdict, but only after ``delay_s`` seconds (released early by ``stop()``)."""
        content = json.dumps(verdict if verdict is not None else self.default)
        return self._push(_Answer(200, self._completion(content), delay_s=delay_s))

    def answer_with(self, fn: Callable[[RecordedRequest], tuple[int, Any]]) -> "FakeOpenAI":
        """Compute the answer from the request: ``fn`` returns (status, body)."""
        return self._push(_Answer(-1, fn))

    # --- serving --------------------------------------------------------------------------
    def _completion(self, content: str | None, *, finish_reason: str = "stop", refusal: str | None = None
                    ) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        }

    def _authorised(self, headers: dict[str, str]) -> bool:
        if headers.get("api-key") and headers["api-key"] == self.api_key:
            return True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
            return token == self.api_key or token in self.bearer_tokens
        return False

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in h.headers.items()}
        query = parse_qs(parts.query)
        rec = RecordedRequest("POST", parts.path, query, headers, body)
        path = parts.path.rstrip("/")
        known = path in ("/openai/v1/chat/completions", "/v1/chat/completions") or (
            path == f"/openai/deployments/{self.deployment}/chat/completions")
        if not known:
            self._send(h, _Answer(404, {"error": {"code": "DeploymentNotFound", "message": f"no route {path}"}}))
            return
        if path.startswith("/openai/deployments/") and not query.get("api-version"):
            self._send(h, _Answer(404, {"error": {"code": "404", "message": "api-version query parameter missing"}}))
            return
        with self._lock:
            self.requests.append(rec)
        if not self._authorised(headers):
            self._send(h, _Answer(401, {"error": {"code": "401", "message": "Access denied: invalid key or token."}}))
            return
        with self._lock:
            answer = self._script.popleft() if self._script else _Answer(200, self._completion(json.dumps(self.default)))
        if answer.status == -1:
            status, out = answer.body(rec)
            answer = _Answer(status, out)
        if answer.delay_s:
            self._release.wait(answer.delay_s)
        self._send(h, answer)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, answer: _Answer) -> None:
        payload = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        data = payload.encode("utf-8")
        try:
            h.send_response(answer.status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            for k, v in answer.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out tests)
            pass


class FakeTokenCredential:
    """A TokenCredential for keyless tests: hands out ``token`` and records the scopes asked for."""

    def __init__(self, token: str = "fake-entra-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(tuple(scopes))
        return AccessToken(self.token, int(time.time()) + 3600)

    def close(self) -> None:
        pass
