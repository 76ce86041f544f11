"""What the Functions triggers and the CLI build from the settings: workspaces, clients, store, notifier.

    settings = Settings.from_env()
    with open_runtime(settings) as rt:                 # secrets, store, notifier (lazy clients)
        client = rt.client(rt.workspaces[0])           # one DatabricksClient per workspace host

- ``workspaces(settings)``: ``TRIAGE_WORKSPACES`` (each ``host`` or ``id=host``), else
  ``DATABRICKS_HOST``. An Azure Databricks host carries its workspace id
  (``adb-<id>.<n>.azuredatabricks.net``), so ``id=`` is only needed for other host names.
- ``resolve_workspace(settings, workspace_id)``: the workspace a webhook's ``workspace_id`` names.
- ``build_client`` / ``build_store`` / ``build_notifier``: the production objects, built the same
  way by every trigger (webhook, queue worker, timer sweep) and by ``python -m shared``.

Nothing here does I/O at import; SDKs are imported by the builders when first used.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from shared.notify.notifier import Notifier
    from shared.config import Settings
    from shared.databricks import DatabricksClient
    from shared.secrets import SecretProvider
    from shared.store import Store

__all__ = [
    "Workspace",
    "Runtime",
    "workspaces",
    "resolve_workspace",
    "workspace_for_host",
    "build_secrets",
    "build_client",
    "build_store",
    "build_notifier",
    "open_runtime",
    "process_runtime",
    "process_secrets",
    "process_spend_today",
    "email_configured",
]

log = logging.getLogger(__name__)

# adb-<workspace id>.<n>.azuredatabricks.net (also the .cn / .us sovereign clouds)
_AZURE_HOST_ID = re.compile(r"^adb-(\d+)\.\d+\.azuredatabricks\.")
_WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Workspace:
    """One Databricks workspace: its URL and, when known, its numeric id."""

    host: str
    id: str = ""

    @property
    def key(self) -> str:
        """The workspace's key in the store (watermarks) and on decisions: its host."""
        return self.host


def _normalise_host(raw: str, setting: str) -> str:
    host = raw.strip().rstrip("/")
    if not host:
        raise ConfigError(f"{setting}: an empty workspace host")
    if "://" not in host:
        host = "https://" + host
    parts = urlsplit(host)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path or parts.query \
            or parts.username or parts.password:
        raise ConfigError(f"{setting}: {raw.strip()!r} is not a workspace URL "
                          "(expected https://adb-<id>.<n>.azuredatabricks.net)")
    return host


def workspaces(settings: "Settings") -> list[Workspace]:
    """The configured workspaces, in the order given. Empty when none is configured."""
    entries: tuple[str, ...] = tuple(settings.workspaces)
    setting = "TRIAGE_WORKSPACES"
    if not entries and settings.databricks_host:
        entries, setting = (settings.databricks_host,), "DATABRICKS_HOST"
    found: list[Workspace] = []
    for entry in entries:
        ws_id, sep, host = entry.partition("=")
        if not sep:
            ws_id, host = "", entry
        ws_id = ws_id.strip()
        if ws_id and not _WORKSPACE_ID.fullmatch(ws_id):
            raise ConfigError(f"{setting}: {ws_id!r} is not a workspace id (write id=host, e.g. "
                              "1234567890123456=https://adb-1234567890123456.7.azuredatabricks.net)")
        url = _normalise_host(host, setting)
        if not ws_id:
            m = _AZURE_HOST_ID.match(urlsplit(url).hostname or "")
            ws_id = m.group(1) if m else ""
        if any(w.host == url for w in found):
            continue
        found.append(Workspace(host=url, id=ws_id))
    return found


def resolve_workspace(settings: "Settings", workspace_id: str | None) -> Workspace | None:
    """The workspace a notification's ``workspace_id`` names, or None when it is not one of ours.

    A single configured workspace whose id is unknown (a host name without ``adb-<id>``) takes
    every notification; otherwise the ids must match."""
    configured = workspaces(settings)
    wanted = (workspace_id or "").strip()
    if wanted:
        for ws in configured:
            if ws.id and ws.id == wanted:
                return ws
    if len(configured) == 1 and (not configured[0].id or not wanted):
        return configured[0]
    return None


def workspace_for_host(settings: "Settings", host: str) -> Workspace:
    """The configured workspace with this host (a queue message names its workspace by host).
    ConfigError when it is not configured: the app never calls a host it was not given."""
    configured = workspaces(settings)
    if not configured:
        raise ConfigError("no Databricks workspace is configured: set DATABRICKS_HOST (or TRIAGE_WORKSPACES)")
    if not host:
        return configured[0]
    try:
        url = _normalise_host(host, "workspace")
    except ConfigError:
        url = host
    for ws in configured:
        if ws.host == url:
            return ws
    raise ConfigError(f"workspace {host!r} is not configured in TRIAGE_WORKSPACES / DATABRICKS_HOST")


# --- builders -----------------------------------------------------------------------------------

def build_secrets(settings: "Settings") -> "SecretProvider":
    """The secret provider: Key Vault when KEY_VAULT_URL is set, else the environment."""
    from shared.secrets import SecretProvider

    return SecretProvider.from_settings(settings)


def build_client(settings: "Settings", secrets: "SecretProvider", *, workspace: Workspace | None = None,
                 **client_kwargs: Any) -> "DatabricksClient":
    """A Jobs API client for ``workspace`` (default: the first configured one), authenticated as
    the Databricks unified-auth settings say (``shared.databricks.auth.credential_for``:
    DATABRICKS_AUTH_TYPE, a token, or a service principal's OAuth client id and secret; each may
    be given per workspace as NAME__<workspace id>). Secrets are read through ``secrets`` on use
    (cached there), so a rotated token or client secret is picked up without a restart."""
    from shared.databricks import DatabricksClient
    from shared.databricks.auth import credential_for

    if workspace is None:
        configured = workspaces(settings)
        if not configured:
            raise ConfigError("DATABRICKS_HOST is not set (the workspace URL, "
                              "e.g. https://adb-1234567890123456.7.azuredatabricks.net)")
        workspace = configured[0]
    try:
        host = _normalise_host(workspace.host, "workspace")
    except ConfigError:
        host = workspace.host
    credential = credential_for(settings, secrets, host=host, workspace_id=workspace.id,
                                timeout=float(client_kwargs.get("timeout", 30.0)))
    try:
        return DatabricksClient(workspace.host, credential, **client_kwargs)
    except ValueError as exc:
        raise ConfigError(f"workspace {workspace.host}: {exc}") from exc


def build_store(settings: "Settings", **options: Any) -> "Store":
    """The decision store (TRIAGE_STORAGE, else AzureWebJobsStorage, else a local SQLite file)."""
    from shared.store import open_store

    return open_store(settings, **options)


def email_configured(settings: "Settings", secrets: "SecretProvider | None" = None) -> bool:
    """True when EMAIL_SENDER is set and ACS is reachable keyless (ACS_ENDPOINT) or, when
    ``secrets`` is given, by the ACS_CONNECTION_STRING secret."""
    if not settings.email_sender:
        return False
    if settings.acs_endpoint:
        return True
    if secrets is None:
        return False
    return secrets.get_optional("ACS_CONNECTION_STRING") is not None


def build_notifier(settings: "Settings", secrets: "SecretProvider", *, store: "Store", channel_client: Any = None,
                   **kwargs: Any) -> "Notifier":
    """The notifier the settings describe.

    Email only (the default: ``TRIAGE_NOTIFY_VIA`` and ``TRIAGE_ESCALATE_VIA`` are ``email`` and no
    other channel's secret is set): ``EmailNotifier`` when email is configured, else ``NullNotifier``
    (which records "not configured" on the decision, so a person can still find it with
    ``decisions list``). Otherwise a ``RoutedNotifier`` over every configured channel
    (``shared.notify.routing``); ``channel_client`` is their ``ChannelClient`` (default: one with
    the production time-outs and retries)."""
    from shared.notify.routing import build_channels

    channels = build_channels(settings, secrets, store=store, client=channel_client)
    email = None
    if email_configured(settings, secrets):
        from shared.notify import EmailNotifier

        email = EmailNotifier.from_settings(settings, store=store, secrets=secrets, **kwargs)
    routes = set(settings.notify_via) | set(settings.escalate_via)
    if not channels and (routes <= {"email"} or email is None):
        if email is not None:
            return email
        from shared.notify import NullNotifier

        log.info("no notification channel is configured (email: EMAIL_SENDER and ACS_ENDPOINT / "
                 "ACS_CONNECTION_STRING; %s: their secrets): decisions are recorded, nobody is told",
                 ", ".join(sorted(routes - {"email"})) or "others")
        return NullNotifier()
    from shared.notify.routing import RoutedNotifier

    missing = sorted(routes - set(channels) - ({"email"} if email is not None else set()))
    if missing:
        log.warning("notification channels %s are on a route but not configured (their secret is not set)",
                    ", ".join(missing))
    return RoutedNotifier(settings, {**({"email": email} if email is not None else {}), **channels})


def refuse_act_without_channel(settings: "Settings", notifier: Any) -> None:
    """Act mode with no notification channel is refused: a decision that needs a person (an
    email, an escalation, an action that failed for good) would reach nobody."""
    from shared.notify import NullNotifier

    if settings.acting and isinstance(notifier, NullNotifier):
        raise ConfigError("TRIAGE_MODE=act needs a notification channel, so that a decision that needs a person "
                          "reaches one: set EMAIL_SENDER with ACS_ENDPOINT (or the secret ACS_CONNECTION_STRING), "
                          "or another channel (TRIAGE_NOTIFY_VIA / TRIAGE_ESCALATE_VIA); or keep TRIAGE_MODE=shadow")


@dataclass
class Runtime:
    """The objects one invocation needs. Databricks clients are built per workspace on first use.
    Close it (or use ``with``) to release connections."""

    settings: "Settings"
    secrets: "SecretProvider"
    store: "Store"
    notifier: Notifier
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    owns: tuple[str, ...] = ("secrets", "store", "notifier")   # what close() closes
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)
    # A process-wide cache of clients (``process_runtime``): kept open across invocations.
    shared_clients: dict[tuple, Any] | None = field(default=None, repr=False)

    @property
    def workspaces(self) -> list[Workspace]:
        return workspaces(self.settings)

    def client(self, workspace: Workspace | None = None) -> "DatabricksClient":
        ws = workspace or workspace_for_host(self.settings, "")
        if ws.host in self._clients:
            return self._clients[ws.host]
        if self.shared_clients is not None and not self.client_kwargs:
            key = _client_key(self.settings, ws)
            with _process_lock:
                client = self.shared_clients.get(key)
                if client is None:
                    client = self.shared_clients[key] = build_client(self.settings, self.secrets, workspace=ws)
            return client
        self._clients[ws.host] = build_client(self.settings, self.secrets, workspace=ws, **self.client_kwargs)
        return self._clients[ws.host]

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        for name in ("notifier", "store", "secrets"):
            if name not in self.owns:
                continue
            thing = getattr(self, name)
            close = getattr(thing, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - closing is best effort
                    log.debug("closing %s failed: %s", type(thing).__name__, exc)

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_runtime(settings: "Settings", *, store: "Store | None" = None, secrets: "SecretProvider | None" = None,
                 notifier: Notifier | None = None, **client_kwargs: Any) -> Runtime:
    """Secrets, store and notifier from the settings (any of them may be passed in instead)."""
    owns = tuple(name for name, given in (("secrets", secrets), ("store", store), ("notifier", notifier))
                 if given is None)
    secrets = secrets or build_secrets(settings)
    try:
        store = store or build_store(settings)
        if notifier is None:
            notifier = build_notifier(settings, secrets, store=store)
            refuse_act_without_channel(settings, notifier)
    except Exception:
        if "store" in owns and store is not None:
            store.close()
        if "secrets" in owns:
            secrets.close()
        raise
    return Runtime(settings=settings, secrets=secrets, store=store, notifier=notifier,
                   client_kwargs=dict(client_kwargs), owns=owns)


# --- per-process reuse for the Functions triggers ------------------------------------------------

_process_lock = threading.RLock()
_process_stores: dict[tuple[str, str, str], Any] = {}
_process_secrets: dict[tuple[str, int], Any] = {}
_process_clients: dict[tuple, Any] = {}


def _client_key(settings: "Settings", workspace: Workspace) -> tuple:
    """What a Databricks client depends on: the workspace, the Key Vault, and every Databricks or
    Azure identity setting (as a digest kept in memory only, never a value: when an app setting
    changes under a warm process, the next invocation gets a new client)."""
    import hashlib

    auth = sorted((k, str(v)) for k, v in settings.extra.items()
                  if k.startswith(("DATABRICKS_", "ARM_", "AZURE_CLIENT_", "AZURE_TENANT_")))
    digest = hashlib.sha256(repr(auth).encode()).hexdigest()[:16]
    return (workspace.host, settings.databricks_auth, settings.key_vault_url, settings.secret_cache_ttl_s, digest)


def process_secrets(settings: "Settings") -> "SecretProvider":
    """The secret reader for this process: one per Key Vault (so its TTL cache lives across
    invocations); from the environment, a fresh one (cheap, and always current)."""
    if not settings.key_vault_url:
        return build_secrets(settings)
    key = (settings.key_vault_url, settings.secret_cache_ttl_s)
    with _process_lock:
        if key not in _process_secrets:
            _process_secrets[key] = build_secrets(settings)
        return _process_secrets[key]


def process_runtime(settings: "Settings") -> Runtime:
    """A ``Runtime`` for one function invocation that reuses, within this process, the store
    (one per storage configuration: its tables are created once, its connections kept), the
    Key Vault secret reader (``process_secrets``) and the Databricks clients (one per workspace
    and auth settings: its HTTPS session keeps its connections, its credential its Entra token
    until shortly before it expires). Closing the runtime closes only what is per invocation
    (the notifier, an environment secret reader)."""
    from shared.store import storage_choice

    store_key = storage_choice(settings)
    with _process_lock:
        store = _process_stores.get(store_key)
        if store is None:
            store = _process_stores[store_key] = build_store(settings)
    secrets = process_secrets(settings)
    rt = open_runtime(settings, store=store, secrets=secrets if settings.key_vault_url else None)
    rt.shared_clients = _process_clients
    return rt


_spend_seen: dict[tuple, tuple[float, dict[str, Any] | None]] = {}
_SPEND_CACHE_S = 60.0


def process_spend_today(settings: "Settings") -> dict[str, Any] | None:
    """Today's spend counters (``shared.store.spend.today``) for ``/api/health``: read through
    the store this process already has open, at most once a minute; None when this process has
    no store open yet or the store cannot be read (the probe never opens a connection)."""
    import time

    from shared.store import storage_choice

    key = storage_choice(settings)
    now = time.monotonic()
    with _process_lock:
        seen = _spend_seen.get(key)
        if seen is not None and now - seen[0] < _SPEND_CACHE_S:
            return seen[1]
        store = _process_stores.get(key)
    if store is None:
        return None
    from shared.store.spend import today

    try:
        figures: dict[str, Any] | None = dict(today(store))
    except Exception as exc:  # noqa: BLE001 - health reports; it never fails on a store hiccup
        log.info("health: spend counters unavailable: %s", type(exc).__name__)
        figures = None
    with _process_lock:
        _spend_seen[key] = (now, figures)
    return figures
