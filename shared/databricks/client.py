"""Databricks Jobs API 2.2 client: one session, one ``_request()``, typed errors, bounded retries.

    client = DatabricksClient.from_settings(settings)          # DATABRICKS_HOST + DATABRICKS_AUTH_TYPE
    run = client.get_run(run_id)                               # every page of tasks/job_clusters/...
    client.repair_run({"run_id": run_id, "rerun_all_failed_tasks": True})

Authentication is a credential object with ``authorization() -> str`` (the header value), from
``shared/databricks/auth.py``: ``PatCredential``, ``AzureIdentityCredential``, ``OAuthM2MCredential``.

Retries (``RetryPolicy``): connection errors, time-outs, 5xx, 429 and a 400 whose error_code is
``COULD_NOT_ACQUIRE_LOCK`` are retried with exponential back-off and jitter (429/503 honour
``Retry-After``), all under one total deadline. A call that changes state and has no idempotency
token (``runs/repair``) is only sent again when the workspace surely did not act on it: the
connection was never made, or the answer was 429/503/``COULD_NOT_ACQUIRE_LOCK``. Every other error
is raised at once as a typed ``DatabricksError`` carrying status, ``error_code``, message, method
and URL. The token never appears in an error, a log line or a repr. A command line's policy
(``RetryPolicy(until=..., retry_refused=False, notify=...)``) also ends every call by the
command's deadline, gives up at once on a refused connection and announces each retry.

``requests`` (and ``azure.identity``) are imported on first use, never at import time.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping
from urllib.parse import urlencode, urlsplit

from shared.errors import (
    ConfigError,
    DatabricksAuthError,
    DatabricksConflict,
    DatabricksError,
    DatabricksNotFound,
    DatabricksUnavailable,
)

from shared.databricks.auth import (DATABRICKS_SCOPE, AzureIdentityCredential, Credential, PatCredential,
                                     no_azure_credential)

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    import requests

__all__ = [
    "DATABRICKS_SCOPE",
    "RUNS_GET",
    "RUNS_GET_OUTPUT",
    "JOBS_GET",
    "RUNS_LIST",
    "RUNS_REPAIR",
    "RUNS_SUBMIT",
    "RUN_NOW",
    "JOBS_UPDATE",
    "CLUSTER_EVENTS",
    "Credential",
    "PatCredential",
    "AzureIdentityCredential",
    "RetryPolicy",
    "DatabricksClient",
    "is_retryable",
    "no_azure_credential",
    "uses_environment",
]

log = logging.getLogger(__name__)


# Endpoints: (METHOD, path). One client method each.
RUNS_GET = ("GET", "/api/2.2/jobs/runs/get")
RUNS_GET_OUTPUT = ("GET", "/api/2.2/jobs/runs/get-output")
JOBS_GET = ("GET", "/api/2.2/jobs/get")
RUNS_LIST = ("GET", "/api/2.2/jobs/runs/list")
RUNS_REPAIR = ("POST", "/api/2.2/jobs/runs/repair")
RUNS_SUBMIT = ("POST", "/api/2.2/jobs/runs/submit")
RUN_NOW = ("POST", "/api/2.2/jobs/run-now")
JOBS_UPDATE = ("POST", "/api/2.2/jobs/update")
CLUSTER_EVENTS = ("POST", "/api/2.1/clusters/events")

# runs/get returns at most 100 elements of these arrays per page (follow next_page_token).
_PAGED_RUN_ARRAYS = ("tasks", "job_clusters", "job_parameters", "repair_history", "iterations")

_RETRYABLE_ERROR_CODES = frozenset({"COULD_NOT_ACQUIRE_LOCK"})
_AUTH_ERROR_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "CUSTOMER_UNAUTHORIZED"})
_NOT_FOUND_ERROR_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
# The run/job is not in a state that allows the call, or a concurrent writer got there first.
_CONFLICT_ERROR_CODES = frozenset({
    "INVALID_STATE", "INVALID_STATE_TRANSITION", "RESOURCE_CONFLICT", "ABORTED",
    "ALREADY_EXISTS", "RESOURCE_ALREADY_EXISTS",
})
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_MAX_MESSAGE = 500
_USER_AGENT = "databricks-triage/0.1"

# Environment variables ``requests`` reads when a session trusts the environment.
_ENVIRONMENT_SETTINGS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
                         "CURL_CA_BUNDLE", "NETRC")


def uses_environment(env: Mapping[str, str] | None = None) -> bool:
    """True when a proxy, a CA bundle or a netrc file is configured in the environment (either
    case), so HTTP sessions must keep reading it (``requests``' ``trust_env``)."""
    import os

    values = os.environ if env is None else env
    return any(values.get(name) or values.get(name.lower()) for name in _ENVIRONMENT_SETTINGS)


# --- retries ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Every wait fits inside ``deadline_s`` (total, from the first attempt);
    a wait that would end past it ends the call with ``DatabricksUnavailable`` instead.
    ``sleep``/``clock``/``rng`` are injectable so tests wait zero seconds."""

    deadline_s: float = 60.0
    max_attempts: int = 8
    backoff_base_s: float = 1.0
    backoff_max_s: float = 16.0
    jitter: bool = True
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    # A command line's choices: ``until`` (a ``clock()`` time) ends every call by then, whatever
    # ``deadline_s`` says; ``retry_refused=False`` gives up at once when nobody listens on the
    # port; ``notify`` hears each retry ("retrying runs/get in 4 s (2/8): HTTP 503").
    until: float | None = field(default=None, compare=False)
    retry_refused: bool = True
    notify: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.deadline_s <= 0:
            raise ValueError("RetryPolicy.deadline_s must be > 0 seconds")
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1 (1 = no retries)")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("RetryPolicy back-off times must be >= 0")

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return max(0.0, retry_after)
        wait = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        if self.jitter:
            wait = wait / 2 + self.rng() * wait / 2   # "equal jitter": between half and all of it
        return wait


def _error_code_of(obj: Any) -> str | None:
    """Databricks' error_code from a response body (a non-string code counts as absent)."""
    try:
        body = obj.json()
    except Exception:  # noqa: BLE001 - any body that is not JSON has no code
        return None
    code = body.get("error_code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and code else None


def is_retryable(outcome: Any) -> bool:
    """True when a failed call may pass if sent again: connection errors (but TLS errors),
    time-outs, HTTP 5xx (but 501/505), 429, and a 400 whose error_code is COULD_NOT_ACQUIRE_LOCK.

    ``outcome`` is a ``requests`` response, a ``requests``/OS exception, or a ``DatabricksError``
    (so a caller can decide whether a failed triage is worth a queue retry). Pure: no I/O."""
    if outcome is None:
        return False
    if isinstance(outcome, DatabricksError):
        if isinstance(outcome, DatabricksUnavailable):
            return True
        return _status_retryable(outcome.status, outcome.error_code)
    if isinstance(outcome, BaseException):
        try:
            import requests
        except ImportError:  # pragma: no cover - requests is a runtime dependency
            requests = None  # type: ignore[assignment]
        if requests is not None:
            if isinstance(outcome, requests.exceptions.SSLError):
                return False          # a certificate problem does not fix itself
            if isinstance(outcome, (requests.ConnectionError, requests.Timeout,
                                    requests.exceptions.ChunkedEncodingError)):
                return True
            if isinstance(outcome, requests.RequestException):
                return False
        return isinstance(outcome, (ConnectionError, TimeoutError))
    status = getattr(outcome, "status_code", None)
    if not isinstance(status, int):
        return False
    return _status_retryable(status, _error_code_of(outcome) if status == 400 else None)


def _status_retryable(status: int | None, error_code: str | None) -> bool:
    if status is None:
        return False
    if status == 429:
        return True
    if status >= 500:
        return status not in (501, 505)
    return status == 400 and error_code in _RETRYABLE_ERROR_CODES


def _surely_not_processed(outcome: Any) -> bool:
    """For calls that must not run twice: the workspace cannot have acted on the request."""
    import requests

    if isinstance(outcome, requests.ConnectTimeout):
        return True
    if isinstance(outcome, requests.ConnectionError):
        from urllib3.exceptions import NewConnectionError

        reason = outcome.args[0] if outcome.args else None
        reason = getattr(reason, "reason", reason)
        return isinstance(reason, NewConnectionError) or isinstance(outcome.__context__, NewConnectionError)
    status = getattr(outcome, "status_code", None)
    if status in (429, 503):
        return True
    return status == 400 and _error_code_of(outcome) in _RETRYABLE_ERROR_CODES


def _cause_of(exc: BaseException) -> BaseException | None:
    """The exception behind a transport error: urllib3's ``reason`` (when it is an exception,
    not a text), the first argument that is one, or the chained cause."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    first = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
    return first or exc.__cause__ or exc.__context__


def _refused(outcome: Any) -> bool:
    """The connection was refused (nothing listens on the port) or the host name does not resolve."""
    if not isinstance(outcome, BaseException):
        return False
    seen = 0
    root: BaseException | None = outcome
    while root is not None and seen < 10:
        if isinstance(root, ConnectionRefusedError):
            return True
        if type(root).__name__ == "NameResolutionError":
            return True
        nxt = _cause_of(root)
        if nxt is root:
            break
        root, seen = nxt, seen + 1
    return False


def _retry_after_s(response: Any, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent/bad."""
    raw = (getattr(response, "headers", None) or {}).get("Retry-After")
    if raw is None:
        return None
    raw = str(raw).strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def _describe_exception(exc: BaseException, host: str) -> str:
    """A short, token-free description of a transport failure."""
    import requests

    where = urlsplit(host).netloc or host
    if isinstance(exc, requests.ConnectTimeout):
        return f"connecting to {where} timed out"
    if isinstance(exc, requests.ReadTimeout):
        return f"{where} did not answer in time"
    if isinstance(exc, requests.ConnectionError):
        root: BaseException | None = exc
        seen = 0
        while root is not None and seen < 10:   # the deepest cause: an OSError with a reason
            nxt = _cause_of(root)
            if nxt is None or nxt is root:
                break
            root, seen = nxt, seen + 1
        if isinstance(root, OSError) and root.strerror:
            return f"cannot connect to {where}: {root.strerror}"
        if type(root).__name__ in ("RemoteDisconnected", "ProtocolError", "ConnectionResetError"):
            return f"{where} closed the connection without an answer"
        return f"cannot connect to {where}: {type(root).__name__}"
    return f"{type(exc).__name__}: {exc}"


def _one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    t = " ".join(str(text).split())
    return t if len(t) <= limit else t[: limit - 3] + "..."


# --- the client ---------------------------------------------------------------------------------

class DatabricksClient:
    """Jobs API 2.2 for one workspace. Thread-safe as far as ``requests.Session`` is (one client
    per worker thread is the safe choice). Use as a context manager or call ``close()``.

    ``calls`` counts logical API calls per endpoint path (pages included, retries not);
    ``attempts`` counts every HTTP attempt."""

    def __init__(self, host: str, credential: Credential, *, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, session: "requests.Session | None" = None) -> None:
        if not isinstance(host, str) or not host.strip():
            raise ValueError("host is empty: set DATABRICKS_HOST to the workspace URL, "
                             "e.g. https://adb-1234567890123456.7.azuredatabricks.net")
        host = host.strip().rstrip("/")
        if "://" not in host:
            host = "https://" + host
        parts = urlsplit(host)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"host {host!r} is not a workspace URL (expected https://<workspace host>)")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(f"host {host!r} must use https (plain http is only allowed for a local test server)")
        if parts.path or parts.query or parts.username or parts.password:
            raise ValueError(f"host {host!r} must be the workspace URL only, without a path, query or credentials")
        if credential is None or not callable(getattr(credential, "authorization", None)):
            raise ValueError("credential must provide authorization() (PatCredential or AzureIdentityCredential)")
        if not timeout or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        self.host = host
        self.credential = credential
        self.timeout = float(timeout)
        self.retry = retry or RetryPolicy()
        self._session = session
        self._owns_session = session is None
        self.calls: Counter[str] = Counter()
        self.attempts = 0

    @classmethod
    def from_settings(cls, settings: Settings, token: str | Callable[[], str] | None = None,
                      **kwargs: Any) -> "DatabricksClient":
        """Build from ``Settings``: host from DATABRICKS_HOST, auth from DATABRICKS_AUTH_TYPE.

        ``token`` is a personal access token (or a callable returning it) fetched by the caller;
        when None the credential is chosen by ``shared.databricks.auth.credential_for`` with the
        secrets read through ``secrets=`` (keyword, a ``shared.secrets.SecretProvider``), else
        through one built from the settings: Key Vault when KEY_VAULT_URL is set, the environment
        otherwise. ``credential=`` (keyword) overrides both, e.g. an ``AzureIdentityCredential``
        around a specific azure-core credential."""
        host = getattr(settings, "databricks_host", "") or ""
        if not host:
            raise ConfigError("DATABRICKS_HOST is not set (the workspace URL, "
                              "e.g. https://adb-1234567890123456.7.azuredatabricks.net)")
        given: Credential | None = kwargs.pop("credential", None)
        secrets: SecretProvider = kwargs.pop("secrets", None)
        if given is not None:
            credential: Credential = given
        elif token is not None:
            credential = PatCredential(token)
        else:
            from shared.databricks.auth import credential_for
            from shared.secrets import SecretProvider

            provider = secrets if secrets is not None else SecretProvider.from_settings(settings)
            credential = credential_for(settings, provider, host=host.strip().rstrip("/"),
                                        timeout=float(kwargs.get("timeout", 30.0)))
        try:
            return cls(host, credential, **kwargs)
        except ValueError as exc:
            raise ConfigError(f"DATABRICKS_HOST: {exc}") from exc

    # --- lifecycle ---
    def close(self) -> None:
        if self._session is not None and self._owns_session:
            self._session.close()
            self._session = None

    def __enter__(self) -> "DatabricksClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatabricksClient({self.host!r}, {self.credential!r})"

    # --- endpoints ---
    def get_run(self, run_id: int, include_history: bool = True) -> dict[str, Any]:
        """runs/get, with every page of tasks/job_clusters/job_parameters/repair_history merged."""
        params: dict[str, Any] = {"run_id": int(run_id)}
        if include_history:
            params["include_history"] = "true"
        run = self._request(RUNS_GET, params=params)
        token = run.pop("next_page_token", None)
        seen: set[str] = set()
        while token:
            if token in seen:
                raise DatabricksError("runs/get returned the same next_page_token twice; stopping",
                                      method=RUNS_GET[0], url=self._url(RUNS_GET[1], params))
            seen.add(token)
            page = self._request(RUNS_GET, params={**params, "page_token": token})
            for key in _PAGED_RUN_ARRAYS:
                more = page.get(key)
                if isinstance(more, list) and more:
                    current = run.get(key)
                    run[key] = (current if isinstance(current, list) else []) + more
            token = page.get("next_page_token")
        return run

    def get_run_output(self, task_run_id: int) -> dict[str, Any]:
        """runs/get-output for one *task* run (Databricks answers 400 for a multi-task parent)."""
        return self._request(RUNS_GET_OUTPUT, params={"run_id": int(task_run_id)})

    def get_job(self, job_id: int) -> dict[str, Any]:
        """jobs/get. A missing job raises DatabricksNotFound (Databricks answers it either as 404
        RESOURCE_DOES_NOT_EXIST or as 400 INVALID_PARAMETER_VALUE, as the official SDKs note)."""
        try:
            return self._request(JOBS_GET, params={"job_id": int(job_id)})
        except DatabricksError as exc:
            if type(exc) is DatabricksError and exc.status == 400 and exc.error_code == "INVALID_PARAMETER_VALUE":
                raise DatabricksNotFound(exc.message, status=exc.status, error_code=exc.error_code,
                                         method=exc.method, url=exc.url) from exc
            raise

    def list_runs(self, job_id: int | None = None, completed_only: bool = True,
                  start_time_from: int | None = None, start_time_to: int | None = None,
                  expand_tasks: bool = True, limit: int = 25) -> Iterator[dict[str, Any]]:
        """runs/list, newest first, following page_token until the last page (a generator:
        pages are fetched as the caller iterates)."""
        if not 1 <= int(limit) <= 25:
            raise ValueError("limit must be between 1 and 25 (the Jobs API maximum)")
        params: dict[str, Any] = {"limit": int(limit)}
        if job_id is not None:
            params["job_id"] = int(job_id)
        if completed_only:
            params["completed_only"] = "true"
        if expand_tasks:
            params["expand_tasks"] = "true"
        if start_time_from is not None:
            params["start_time_from"] = int(start_time_from)
        if start_time_to is not None:
            params["start_time_to"] = int(start_time_to)
        seen: set[str] = set()
        while True:
            page = self._request(RUNS_LIST, params=params)
            runs = page.get("runs") or []
            if not isinstance(runs, list):
                raise DatabricksError("runs/list answered 'runs' that is not a list",
                                      method=RUNS_LIST[0], url=self._url(RUNS_LIST[1], params))
            yield from (r for r in runs if isinstance(r, dict))
            token = page.get("next_page_token")
            if not token or page.get("has_more") is False or token in seen:
                return
            seen.add(token)
            params = {**params, "page_token": token}

    def repair_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """runs/repair. Not idempotent: only re-sent when the workspace surely did not act."""
        return self._request(RUNS_REPAIR, body=dict(body), idempotent=False)

    def submit_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """runs/submit. Re-sent on transient failures only when it carries an idempotency_token."""
        return self._request(RUNS_SUBMIT, body=dict(body), idempotent=bool(body.get("idempotency_token")))

    def get_cluster_events(self, cluster_id: str, *, event_types: Iterable[str] = (), limit: int = 50,
                           order: str = "DESC") -> dict[str, Any]:
        """clusters/events: one page of a cluster's events, newest first by default (the failure is at
        the end of a job cluster's life). A read, so re-sent on transient failures."""
        if not 1 <= int(limit) <= 500:
            raise ValueError("limit must be between 1 and 500 (the Clusters API maximum)")
        body: dict[str, Any] = {"cluster_id": str(cluster_id), "order": order, "limit": int(limit)}
        if event_types:
            body["event_types"] = list(event_types)
        return self._request(CLUSTER_EVENTS, body=body, idempotent=True)

    def run_now(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """run-now. Re-sent on transient failures only when it carries an idempotency_token."""
        return self._request(RUN_NOW, body=dict(body), idempotent=bool(body.get("idempotency_token")))

    def update_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """jobs/update (``job_id``, ``new_settings``, ``fields_to_remove``). The same update sent
        twice leaves the job as once, so it is re-sent on transient failures."""
        return self._request(JOBS_UPDATE, body=dict(body), idempotent=True)

    # --- the one place HTTP happens ---
    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        return self.host + path + (("?" + urlencode(params)) if params else "")

    def _scrub(self, text: str) -> str:
        """The client's own token, then every recognisable secret (``shared.redact``), out of a
        text the workspace or the network produced. Scrub before shortening, never after: a
        secret cut in half is no longer recognisable."""
        from shared.redact import redact

        secrets = getattr(self.credential, "secrets", None)
        for value in (secrets() if callable(secrets) else ()):
            if value and len(value) >= 8:
                text = text.replace(value, "[REDACTED]")
        return redact(text)

    def _get_session(self) -> "requests.Session":
        if self._session is None:
            import requests

            self._session = requests.Session()
            # requests looks up proxies, CA bundles and ~/.netrc from the environment on every
            # call (a noticeable share of CPU); only when one of those is configured is it needed.
            self._session.trust_env = uses_environment()
            self._owns_session = True
        return self._session

    def _request(self, endpoint: tuple[str, str], *, params: Mapping[str, Any] | None = None,
                 body: Mapping[str, Any] | None = None, idempotent: bool | None = None) -> dict[str, Any]:
        import requests

        method, path = endpoint
        url = self.host + path
        shown = self._url(path, params)
        if idempotent is None:
            idempotent = method == "GET"
        policy = self.retry
        deadline = policy.clock() + policy.deadline_s
        if policy.until is not None:
            deadline = min(deadline, policy.until)
            if policy.clock() >= deadline:
                raise DatabricksUnavailable(f"{path.rsplit('/jobs/', 1)[-1]} not sent: the command's time limit "
                                            "has passed", method=method, url=shown)
        session = self._get_session()
        self.calls[path] += 1
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            self.attempts += 1
            remaining = deadline - policy.clock()
            read_timeout = max(0.05, min(self.timeout, remaining))
            headers = {"Authorization": self.credential.authorization(), "Accept": "application/json",
                       "User-Agent": _USER_AGENT}
            outcome: Any
            try:
                outcome = session.request(method, url, params=params, json=body, headers=headers,
                                          timeout=(min(10.0, read_timeout), read_timeout))
            except requests.RequestException as exc:
                outcome = exc
            del headers
            if not isinstance(outcome, BaseException) and outcome.status_code < 400:
                return self._parse(outcome, method, shown)
            if (not isinstance(outcome, BaseException) and outcome.status_code == 401 and not refreshed
                    and callable(getattr(self.credential, "invalidate", None))):
                refreshed = True   # an expired/revoked Entra token: fetch a fresh one once
                self.credential.invalidate()  # type: ignore[attr-defined]
                continue
            if not policy.retry_refused and _refused(outcome):
                raise DatabricksUnavailable(self._describe(outcome), method=method, url=shown) from outcome
            if not is_retryable(outcome) or not (idempotent or _surely_not_processed(outcome)):
                raise self._error(outcome, method, shown) from (outcome if isinstance(outcome, BaseException) else None)
            retry_after = None if isinstance(outcome, BaseException) else _retry_after_s(outcome)
            wait = policy.backoff(attempt, retry_after)
            left = deadline - policy.clock()
            what = self._describe(outcome)
            if attempt >= policy.max_attempts or wait >= left:
                why = f"gave up after {attempt} attempt{'s' if attempt > 1 else ''}" + (
                    f" (the next wait would pass the {policy.deadline_s:g} s deadline)"
                    if attempt < policy.max_attempts else "")
                err = DatabricksUnavailable(
                    f"{what}; {why}",
                    status=None if isinstance(outcome, BaseException) else outcome.status_code,
                    error_code=None if isinstance(outcome, BaseException) else _error_code_of(outcome),
                    method=method, url=shown)
                raise err from (outcome if isinstance(outcome, BaseException) else None)
            log.info("Databricks %s %s attempt %d failed (%s); retrying in %.2f s",
                        method, path, attempt, what, wait)
            if policy.notify is not None:
                policy.notify(f"retrying {path.rsplit('/jobs/', 1)[-1]} in {wait:.0f} s "
                              f"({attempt + 1}/{policy.max_attempts}): {what}")
            policy.sleep(wait)

    def _describe(self, outcome: Any) -> str:
        if isinstance(outcome, BaseException):
            return _one_line(self._scrub(_describe_exception(outcome, self.host)), 300)
        code = _error_code_of(outcome)
        return f"HTTP {outcome.status_code}" + (f" {code}" if code else "")

    def _parse(self, response: Any, method: str, shown: str) -> dict[str, Any]:
        text = response.text or ""
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatabricksError(
                f"the workspace answered HTTP {response.status_code} with a body that is not JSON "
                f"({_one_line(self._scrub(text[:16384]), 80)!r}); is DATABRICKS_HOST the workspace URL?",
                status=response.status_code, method=method, url=shown) from exc
        if not isinstance(data, dict):
            raise DatabricksError(
                f"the workspace answered HTTP {response.status_code} with JSON that is not an object "
                f"({type(data).__name__})", status=response.status_code, method=method, url=shown)
        return data

    def _error(self, outcome: Any, method: str, shown: str) -> DatabricksError:
        if isinstance(outcome, BaseException):
            return DatabricksError(self._describe(outcome), method=method, url=shown)
        status = outcome.status_code
        code, message = None, ""
        try:
            body = outcome.json()
        except Exception:  # noqa: BLE001
            body = None
        if isinstance(body, dict):
            raw_code = body.get("error_code")
            code = raw_code if isinstance(raw_code, str) and raw_code else None
            message = str(body.get("message") or body.get("error") or "")
        if not message:
            body_text = self._scrub((outcome.text or "")[:16384])   # scrubbed before it is shortened
            message = _one_line(body_text, 200) or (outcome.reason or f"HTTP {status}")
        message = _one_line(self._scrub(message))
        if status in (401, 403) or code in _AUTH_ERROR_CODES:
            cls: type[DatabricksError] = DatabricksAuthError
        elif status == 404 or code in _NOT_FOUND_ERROR_CODES:
            cls = DatabricksNotFound
        elif status == 409 or code in _CONFLICT_ERROR_CODES:
            cls = DatabricksConflict
        else:
            cls = DatabricksError
        return cls(message, status=status, error_code=code, method=method, url=shown)
