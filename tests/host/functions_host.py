"""A stand-in for the Azure Functions host that drives the real Python worker library.

Azure runs a Python 3.13+ app as two processes: the .NET Functions host (triggers, HTTP front
end, queue listener, scaling, retries) and the Python worker, which the host talks to over the
FunctionRpc protocol. The worker's logic is the PyPI package ``azure-functions-runtime``: its
``handle_event`` coroutines take the host's messages (worker init, functions metadata, function
load, invocation, environment reload) and answer with FunctionRpc messages, using message classes
its caller hands it. ``FunctionsHost`` plays the host's half in-process, with real protobuf
messages compiled from ``function_rpc.proto``:

    host = FunctionsHost(app_dir, protos, host_json=...)
    host.start()                                   # init (the worker indexes function_app.py), metadata, load
    host.specialize(app_dir, env)                  # or: a placeholder worker given its app (environment reload)
    host.http("POST", "/api/databricks/webhook", headers=..., body=b"...", query={"code": key})
    host.drain_queue(conn, "triage-requests")      # receive, decode, invoke; delete / retry / poison
    host.timer("triage_sweep")

What it does as the host does (and says where it simplifies):

- HTTP: routes by the indexed ``route`` and ``methods`` under ``extensions.http.routePrefix``;
  enforces ``authLevel`` (a function key in ``?code=`` or ``x-functions-key``, else 401 without
  calling the worker); builds ``RpcHttp`` the way the host converts an ASP.NET request: header
  names lower-cased, empty query values dropped, route values as ``params``, the body as bytes when
  the worker declared ``RawHttpBodyBytes`` (else as a string), no body field for an empty body.
  The answer's ``RpcHttp`` is read back (status, headers, body); a failed invocation is a 500.
- Queue: messages are read from the real queue (Azurite), decoded per ``host.json``
  ``messageEncoding``, delivered as a string (bytes when the binding's dataType is binary) with the
  trigger metadata the queue extension adds (Id, DequeueCount, InsertionTime, ExpirationTime,
  NextVisibleTime, PopReceipt, QueueTrigger; JSON-encoded the way the host encodes non-string
  values), a batch (``batchSize``) at a time, all in flight at once so the worker runs them on
  its thread pool concurrently. Success deletes the message; failure makes it visible again, and after
  ``maxDequeueCount`` attempts moves it to ``<queue>-poison`` (here at once instead of after the
  visibility timeout).
- Timer: the timer's JSON (Schedule, ScheduleStatus, IsPastDue).
- Logs: like the real worker process, a handler on the root logger turns every log record into an
  ``RpcLog`` (``host.logs``), installed before the worker imports the app.

Not here: the gRPC transport (the library never needs it), scaling, the host's own retry
policies, extension bundles, shared-memory transfer, HTTP streaming.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

__all__ = ["FunctionsHost", "HttpResult", "Invocation", "IndexedFunction", "WorkerRequest"]

HOST_VERSION = "4.1040.0"
# The capabilities the host announces to a worker at start-up (names from the public protocol).
HOST_CAPABILITIES = {
    "RpcHttpTriggerMetadataRemoved": "true",
    "RpcHttpBodyOnly": "true",
    "RawHttpBodyBytes": "true",
    "TypedDataCollection": "true",
    "WorkerStatus": "true",
}


@dataclass
class WorkerRequest:
    """What the worker library's handlers take: the StreamingMessage and, for init and reload,
    the ``protos`` namespace and the host address (its name for the caller's envelope)."""

    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class IndexedFunction:
    """One function as the worker reported it: id, name and its raw bindings (parsed JSON)."""

    function_id: str
    name: str
    bindings: list[dict[str, Any]]
    metadata: Any

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if str(b.get("type", "")).endswith("Trigger"))


@dataclass
class Invocation:
    """One InvocationResponse, read back: success, the exception as the host logs it, outputs."""

    function: str
    ok: bool
    response: Any
    return_value: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    exception: str = ""
    stack_trace: str = ""
    logs: list[Any] = field(default_factory=list)


@dataclass
class HttpResult:
    """What the host sends back to an HTTP client."""

    status: int
    headers: dict[str, str]
    body: bytes
    invocation: Invocation | None = None

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


class _RpcLogHandler(logging.Handler):
    """The worker process's log shipping: every record becomes an RpcLog for the host."""

    def __init__(self, host: "FunctionsHost") -> None:
        super().__init__(level=logging.INFO)
        self._host = host

    def emit(self, record: logging.LogRecord) -> None:
        protos = self._host.protos
        level = (protos.RpcLog.Critical if record.levelno >= logging.CRITICAL else
                 protos.RpcLog.Error if record.levelno >= logging.ERROR else
                 protos.RpcLog.Warning if record.levelno >= logging.WARNING else
                 protos.RpcLog.Information)
        system = record.name.startswith(("azure.functions", "azure_functions_runtime"))
        invocation_id = self._host.current_invocation_id() or ""
        try:
            message = self.format(record)
        except Exception:  # noqa: BLE001 - a log line must never break an invocation
            message = str(record.msg)
        self._host.logs.append(protos.RpcLog(
            invocation_id=invocation_id, category=record.name, level=level, message=message,
            log_category=protos.RpcLog.System if system else protos.RpcLog.User))


def _typed(protos: Any, value: Any) -> Any:
    """A trigger-metadata value as the host encodes it: strings as string, the rest as JSON."""
    if isinstance(value, str):
        return protos.TypedData(string=value)
    if isinstance(value, (bytes, bytearray)):
        return protos.TypedData(bytes=bytes(value))
    if isinstance(value, dt.datetime):
        return protos.TypedData(json=json.dumps(value.isoformat()))
    return protos.TypedData(json=json.dumps(value))


def _from_typed(td: Any) -> Any:
    if td is None:
        return None
    kind = td.WhichOneof("data")
    if kind is None:
        return None
    if kind == "json":
        return json.loads(td.json)
    if kind == "http":
        return td.http
    return getattr(td, kind)


class FunctionsHost:
    """Drives ``azure_functions_runtime`` as the Functions host does. See the module docstring."""

    def __init__(self, app_dir: Path, protos: Any, *, host_json: Mapping[str, Any] | None = None,
                 function_keys: Iterable[str] = ()) -> None:
        self.app_dir = Path(app_dir)
        self.protos = protos
        self.host_json = (dict(host_json) if host_json is not None
                          else json.loads((self.app_dir / "host.json").read_text()))
        self.function_keys = set(function_keys)
        self.logs: list[Any] = []
        self.functions: dict[str, IndexedFunction] = {}
        self.worker_capabilities: dict[str, str] = {}
        self.init_response: Any = None
        self.metadata_response: Any = None
        self.load_responses: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._handler = _RpcLogHandler(self)
        self._request_seq = 0

    # --- the protocol ----------------------------------------------------------------------

    def _message(self, **content: Any) -> Any:
        self._request_seq += 1
        return self.protos.StreamingMessage(request_id=f"req-{self._request_seq}", **content)

    def _call(self, handler: Any, name: str, message: Any, *, with_protos: bool = False) -> Any:
        props = {"protos": self.protos, "host": "127.0.0.1"} if with_protos else {}
        return self._loop.run_until_complete(handler(WorkerRequest(name, message, props)))

    def current_invocation_id(self) -> str | None:
        from azure_functions_runtime import invocation_id_cv

        return invocation_id_cv.get()

    def start(self) -> "FunctionsHost":
        """Worker init (the worker indexes the app), functions metadata, then one load per function."""
        import azure_functions_runtime as worker

        root = logging.getLogger()
        root.addHandler(self._handler)          # before the app is imported, as in the worker process
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        if str(self.app_dir) not in sys.path:   # the host puts the app's folder on the worker's path
            sys.path.insert(0, str(self.app_dir))
        worker.start_threadpool_executor()

        init = self.protos.WorkerInitRequest(host_version=HOST_VERSION, capabilities=HOST_CAPABILITIES,
                                             worker_directory=str(Path(worker.__file__).parent),
                                             function_app_directory=str(self.app_dir))
        self.init_response = self._call(worker.worker_init_request, "WorkerInitRequest",
                                        self._message(worker_init_request=init), with_protos=True)
        self._check(self.init_response.result, "worker init")
        self.worker_capabilities = dict(self.init_response.capabilities)
        return self._index_and_load()

    def _index_and_load(self) -> "FunctionsHost":
        import azure_functions_runtime as worker

        self.functions.clear()
        self.load_responses.clear()
        meta = self.protos.FunctionsMetadataRequest(function_app_directory=str(self.app_dir))
        self.metadata_response = self._call(worker.functions_metadata_request, "WorkerMetadataRequest",
                                            self._message(functions_metadata_request=meta))
        self._check(self.metadata_response.result, "functions metadata")
        for fm in self.metadata_response.function_metadata_results:
            bindings = [json.loads(raw) for raw in fm.raw_bindings]
            self.functions[fm.name] = IndexedFunction(fm.function_id, fm.name, bindings, fm)
            load = self.protos.FunctionLoadRequest(function_id=fm.function_id, metadata=fm)
            response = self._call(worker.function_load_request, "FunctionsLoadRequest",
                                  self._message(function_load_request=load))
            self._check(response.result, f"load of {fm.name}")
            self.load_responses[fm.name] = response
        return self

    def specialize(self, app_dir: Path, env: Mapping[str, str]) -> Any:
        """A placeholder worker (started on a folder with no app) is given its app: the host sends
        the app's environment and folder (the worker replaces its whole environment with it and
        indexes the app), then asks for the metadata and loads the functions again."""
        import azure_functions_runtime as worker

        self.app_dir = Path(app_dir)
        self.host_json = json.loads((self.app_dir / "host.json").read_text())
        request = self.protos.FunctionEnvironmentReloadRequest(environment_variables=dict(env),
                                                               function_app_directory=str(self.app_dir))
        response = self._call(worker.function_environment_reload_request, "FunctionEnvironmentReloadRequest",
                              self._message(function_environment_reload_request=request), with_protos=True)
        self._check(response.result, "environment reload")
        self.worker_capabilities.update(response.capabilities)
        self._index_and_load()
        return response

    def close(self) -> None:
        import azure_functions_runtime as worker

        logging.getLogger().removeHandler(self._handler)
        worker.stop_threadpool_executor()
        self._loop.close()

    def _check(self, result: Any, step: str) -> None:
        if result.status != self.protos.StatusResult.Success:
            raise AssertionError(f"{step} failed in the worker: {result.exception.message}\n"
                                 f"{result.exception.stack_trace}")

    def _invocation_request(self, name: str, inputs: Mapping[str, Any],
                            trigger_metadata: Mapping[str, Any] | None) -> Any:
        fn = self.functions[name]
        meta = dict(trigger_metadata or {})
        meta.setdefault("sys", self.protos.TypedData(json=json.dumps({
            "MethodName": name, "UtcNow": dt.datetime.now(dt.timezone.utc).isoformat(),
            "RandGuid": str(uuid.uuid4())})))
        return self.protos.InvocationRequest(
            invocation_id=str(uuid.uuid4()), function_id=fn.function_id,
            input_data=[self.protos.ParameterBinding(name=k, data=v) for k, v in inputs.items()],
            trigger_metadata=meta,
            trace_context=self.protos.RpcTraceContext(trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"),
            retry_context=self.protos.RetryContext(retry_count=0, max_retry_count=0))

    def invoke_many(self, calls: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]]) -> list[Invocation]:
        """Several InvocationRequests in flight at once, as the host sends a batch of queue
        messages: the worker runs them on its thread pool concurrently. One Invocation each, in order."""
        import azure_functions_runtime as worker

        calls = list(calls)
        requests = [self._invocation_request(name, inputs, meta) for name, inputs, meta in calls]
        first_log = len(self.logs)

        async def run_all() -> list[Any]:
            return await asyncio.gather(*(
                worker.invocation_request(WorkerRequest("WorkerInvRequest", self._message(invocation_request=r)))
                for r in requests))

        responses = self._loop.run_until_complete(run_all())
        results = []
        for (name, _, _), request, response in zip(calls, requests, responses):
            assert response.invocation_id == request.invocation_id
            ok = response.result.status == self.protos.StatusResult.Success
            results.append(Invocation(
                function=name, ok=ok, response=response,
                return_value=_from_typed(response.return_value) if response.HasField("return_value") else None,
                outputs={p.name: _from_typed(p.data) for p in response.output_data},
                exception="" if ok else response.result.exception.message,
                stack_trace="" if ok else response.result.exception.stack_trace,
                logs=[e for e in self.logs[first_log:] if e.invocation_id in ("", request.invocation_id)]))
        return results

    def invoke(self, name: str, inputs: Mapping[str, Any], trigger_metadata: Mapping[str, Any] | None = None,
               ) -> Invocation:
        """One InvocationRequest for function ``name``; ``inputs`` maps binding names to TypedData."""
        return self.invoke_many([(name, inputs, trigger_metadata)])[0]

    # --- settings ----------------------------------------------------------------------------

    @staticmethod
    def resolve(value: str) -> str:
        """``%NAME%`` binding expressions resolved from the app settings (the environment)."""
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise KeyError(f"the app setting {name} is not set (binding expression %{name}%)")
            return os.environ[name]
        return re.sub(r"%([^%]+)%", sub, value)

    # --- HTTP ----------------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[IndexedFunction, dict[str, str]] | None:
        prefix = "/" + str(self.host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api")).strip("/")
        if not path.startswith(prefix + "/"):
            return None
        rest = path[len(prefix) + 1:]
        for fn in self.functions.values():
            trigger = fn.trigger
            if trigger.get("type") != "httpTrigger":
                continue
            pattern = "^" + re.sub(r"\\\{([^}:]+)(:[^}]*)?\\\}", r"(?P<\1>[^/]+)",
                                   re.escape(trigger.get("route") or fn.name)) + "$"
            match = re.match(pattern, rest)
            methods = [m.upper() for m in trigger.get("methods") or []]
            if match and (not methods or method.upper() in methods):
                return fn, match.groupdict()
        return None

    def http(self, method: str, path: str, *, headers: Mapping[str, str] | None = None, body: bytes | str = b"",
             query: Mapping[str, str] | None = None) -> HttpResult:
        """An HTTP request to the host's front end, as a client sends it."""
        headers = dict(headers or {})
        query = dict(query or {})
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        routed = self._route(method, path)
        if routed is None:
            return HttpResult(404, {}, b"")
        fn, route_params = routed
        auth = str(fn.trigger.get("authLevel", "function")).lower()
        if auth != "anonymous":
            key = query.get("code") or next((v for k, v in headers.items() if k.lower() == "x-functions-key"), None)
            if not key or key not in self.function_keys:
                return HttpResult(401, {}, b"")     # the host refuses; the worker is never called
        if body:
            headers.setdefault("Content-Length", str(len(body)))
        qs = urlencode(query)
        rpc = self.protos.RpcHttp(
            method=method.upper(), url=f"http://localhost:7071{path}" + (f"?{qs}" if qs else ""),
            headers={k.lower(): v for k, v in headers.items() if v != ""},
            query={k: v for k, v in query.items() if v != ""},
            params=route_params)
        if body:
            raw = self.worker_capabilities.get("RawHttpBodyBytes") and self.worker_capabilities.get("RpcHttpBodyOnly")
            rpc.body.CopyFrom(self.protos.TypedData(bytes=body) if raw
                              else self.protos.TypedData(string=body.decode("utf-8", "replace")))
        name = fn.trigger.get("name", "req")
        meta = {k: self.protos.TypedData(string=v) for k, v in route_params.items()}
        invocation = self.invoke(fn.name, {name: self.protos.TypedData(http=rpc)}, meta)
        if not invocation.ok:
            return HttpResult(500, {}, b"", invocation)
        out = invocation.return_value
        if out is None:
            out = next((v for k, v in invocation.outputs.items()), None)
        if out is None:
            return HttpResult(204, {}, b"", invocation)
        if isinstance(out, (str, bytes)):
            return HttpResult(200, {}, out.encode() if isinstance(out, str) else out, invocation)
        body_out = _from_typed(out.body) if out.HasField("body") else b""
        if isinstance(body_out, str):
            body_out = body_out.encode("utf-8")
        elif not isinstance(body_out, bytes):
            body_out = json.dumps(body_out).encode("utf-8")
        return HttpResult(int(out.status_code or 200), dict(out.headers), body_out, invocation)

    # --- queues --------------------------------------------------------------------------------

    def queue_functions(self, queue_name: str) -> list[IndexedFunction]:
        return [fn for fn in self.functions.values()
                if fn.trigger.get("type") == "queueTrigger" and self.resolve(fn.trigger["queueName"]) == queue_name]

    def queue_inputs(self, fn: IndexedFunction, message: Any, content: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
        """The trigger value and metadata the queue extension hands the worker for one message."""
        trigger = fn.trigger
        if str(trigger.get("dataType", "")).lower() == "binary":
            data = self.protos.TypedData(bytes=content)
        else:
            data = self.protos.TypedData(string=content.decode("utf-8"))
        meta = {
            "QueueTrigger": content.decode("utf-8", "replace"),
            "Id": message.id,
            "DequeueCount": int(message.dequeue_count),
            "InsertionTime": message.inserted_on,
            "ExpirationTime": message.expires_on,
            "NextVisibleTime": message.next_visible_on,
            "PopReceipt": message.pop_receipt,
        }
        return ({trigger.get("name", "msg"): data},
                {k: _typed(self.protos, v) for k, v in meta.items() if v is not None})

    def drain_queue(self, connection_string: str, queue_name: str, *, max_rounds: int = 20) -> list[Invocation]:
        """Deliver every message of ``queue_name`` to its functions until the queue is empty (or
        ``max_rounds`` receives): delete on success; on failure release it, or after
        ``maxDequeueCount`` attempts copy it to ``<queue>-poison`` and delete it. Each batch
        (``batchSize`` in host.json) is in flight at once, as the queue listener runs it."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.queue import QueueClient

        opts = self.host_json.get("extensions", {}).get("queues", {})
        encoding = str(opts.get("messageEncoding", "base64")).lower()
        max_dequeue = int(opts.get("maxDequeueCount", 5))
        functions = self.queue_functions(queue_name)
        assert functions, f"no function listens on queue {queue_name}"
        invocations: list[Invocation] = []
        with QueueClient.from_connection_string(connection_string, queue_name) as q:
            for _ in range(max_rounds):
                try:
                    batch = list(q.receive_messages(max_messages=int(opts.get("batchSize", 16)),
                                                    visibility_timeout=60))
                except ResourceNotFoundError:
                    return invocations
                if not batch:
                    return invocations
                delivered = []          # (message, [call, ...]) for the messages that decode
                for message in batch:
                    try:
                        content = (base64.b64decode(message.content, validate=True) if encoding == "base64"
                                   else str(message.content).encode("utf-8"))
                    except (binascii.Error, ValueError):
                        # Not base64: the binding fails before any Python runs; it ends in the poison queue.
                        self._poison(connection_string, queue_name, message.content)
                        q.delete_message(message)
                        continue
                    delivered.append((message, [(fn.name, *self.queue_inputs(fn, message, content))
                                                for fn in functions]))
                # The listener hands a batch to the worker at once; the worker runs it concurrently.
                results = self.invoke_many(call for _, calls in delivered for call in calls)
                invocations.extend(results)
                for message, calls in delivered:
                    mine, results = results[:len(calls)], results[len(calls):]
                    if all(r.ok for r in mine):
                        q.delete_message(message)
                    elif int(message.dequeue_count) >= max_dequeue:
                        self._poison(connection_string, queue_name, message.content)
                        q.delete_message(message)
                    else:
                        q.update_message(message, visibility_timeout=0)
        return invocations

    def _poison(self, connection_string: str, queue_name: str, content: Any) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import QueueClient

        with QueueClient.from_connection_string(connection_string, queue_name + "-poison") as poison:
            try:
                poison.create_queue()
            except ResourceExistsError:
                pass
            poison.send_message(content)

    # --- timers --------------------------------------------------------------------------------

    def timer(self, name: str, *, past_due: bool = False) -> Invocation:
        """One timer tick as the timer extension delivers it."""
        fn = self.functions[name]
        now = dt.datetime.now(dt.timezone.utc)
        info = {"Schedule": {"AdjustForDST": True},
                "ScheduleStatus": {"Last": (now - dt.timedelta(minutes=5)).isoformat(),
                                   "Next": (now + dt.timedelta(minutes=5)).isoformat(),
                                   "LastUpdated": (now - dt.timedelta(minutes=5)).isoformat()},
                "IsPastDue": past_due}
        data = self.protos.TypedData(json=json.dumps(info))
        return self.invoke(name, {fn.trigger.get("name", "timer"): data})
