"""The decision store: one interface, two backends (Azure Table Storage, SQLite).

CONTRACT (implemented by ``shared/_store_tables.py`` and ``shared/_store_sqlite.py``;
``open_store(settings)`` picks one from TRIAGE_STORAGE — see README "Storage").

Tables (design doc): ``TriageDecisions`` (PartitionKey job id, RowKey decision key) and
``TriageState`` (PartitionKey kind: watermark / llmcache / lineage / counter / email / ...,
RowKey the key within that kind). Writes that claim work are conditional.

No Azure SDK exception leaves this module family: conflicts are typed results
(``Claim``, ``Updated``); outages raise ``StoreError``/``StoreUnavailable``.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "DecisionRecord",
    "Claim",
    "Updated",
    "StateEntry",
    "Store",
    "open_store",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STATUSES = ("decided", "acting", "acted", "failed", "duplicate")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class DecisionRecord:
    """One decision about one attempt of a run: what was decided, done, and learnt."""

    decision_key: str                  # "<run_id>-<repair_count>"
    job_id: str                        # PartitionKey ("" -> "nojob" for one-time runs)
    run_id: int
    workspace: str = ""                # workspace host or id
    job_name: str = ""
    category: str = ""
    action: str = ""
    confidence: float = 0.0
    decided_by: str = "rules"
    reason: str = ""
    fingerprint: str = ""
    excerpt: str = ""                  # redacted, bounded root-cause excerpt
    mode: str = "shadow"               # shadow | act
    status: str = "decided"            # one of STATUSES
    lineage: str = ""                  # the root run id of the repair/resubmit lineage
    decision: dict[str, Any] = field(default_factory=dict)        # Decision.to_dict() (evidence, params, notes)
    action_request: dict[str, Any] = field(default_factory=dict)  # the exact request (sent or, in shadow, not)
    action_result: dict[str, Any] = field(default_factory=dict)   # e.g. {"repair_id": 7} or {"error": "..."}
    not_before: int = 0                # ms epoch: the action waits for its back-off until then
    notification: dict[str, Any] = field(default_factory=dict)    # email status: sent / failed / suppressed
    outcome: dict[str, Any] = field(default_factory=dict)         # what happened after (sweep)
    feedback: dict[str, Any] = field(default_factory=dict)        # a person's verdict
    created_at: int = field(default_factory=now_ms)
    updated_at: int = field(default_factory=now_ms)
    schema_version: int = SCHEMA_VERSION
    etag: str | None = field(default=None, compare=False)  # set by the store on read/write

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("etag", None)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], etag: str | None = None) -> "DecisionRecord":
        known = {f for f in cls.__dataclass_fields__ if f != "etag"}
        rec = cls(**{k: v for k, v in d.items() if k in known})
        rec.etag = etag
        return rec


@dataclass(frozen=True)
class Claim:
    """Result of claiming a decision key: ``won`` is False when another writer got there first;
    ``record`` is then the winner's record (with its etag)."""

    won: bool
    record: DecisionRecord


@dataclass(frozen=True)
class Updated:
    """Result of a conditional update: ``ok`` False means the etag no longer matched;
    ``record`` is then the current stored record."""

    ok: bool
    record: DecisionRecord | None


@dataclass(frozen=True)
class StateEntry:
    kind: str
    key: str
    value: dict[str, Any]
    etag: str | None
    expires_at: int = 0   # ms epoch; 0 = never


class Store(ABC):
    """Shared memory of every app instance. All methods are safe to call from many threads
    and many processes at once."""

    # --- decisions ------------------------------------------------------------------
    @abstractmethod
    def claim(self, record: DecisionRecord) -> Claim:
        """Insert the record if its (job_id, decision_key) is absent."""

    @abstractmethod
    def get(self, decision_key: str, job_id: str | None = None) -> DecisionRecord | None: ...

    @abstractmethod
    def update(self, record: DecisionRecord) -> Updated:
        """Replace the record if ``record.etag`` still matches (sets updated_at and a new etag)."""

    @abstractmethod
    def list(self, job_id: str | None = None, since_ms: int | None = None,
             until_ms: int | None = None, limit: int | None = None) -> list[DecisionRecord]:
        """Decisions, newest first, optionally for one job and a created_at range."""

    # --- generic state (TriageState) ------------------------------------------------
    @abstractmethod
    def state_get(self, kind: str, key: str) -> StateEntry | None:
        """An entry, or None when absent or expired."""

    @abstractmethod
    def state_put(self, kind: str, key: str, value: Mapping[str, Any], *, etag: str | None = None,
                  if_absent: bool = False, ttl_s: int | None = None) -> StateEntry | None:
        """Write an entry. ``if_absent``: only if absent (or expired). ``etag``: only if it matches.
        Returns the new entry, or None when the condition failed."""

    # --- built on state -------------------------------------------------------------
    def incr(self, kind: str, key: str, by: int = 1, *, ttl_s: int | None = None, attempts: int = 20) -> int:
        """Atomically add to a counter under etag with a retry loop; returns the new value."""
        for _ in range(attempts):
            cur = self.state_get(kind, key)
            if cur is None:
                if self.state_put(kind, key, {"count": by}, if_absent=True, ttl_s=ttl_s) is not None:
                    return by
                continue
            n = int(cur.value.get("count", 0)) + by
            ttl = None if not cur.expires_at else max(1, (cur.expires_at - now_ms()) // 1000)
            if self.state_put(kind, key, {**cur.value, "count": n}, etag=cur.etag, ttl_s=ttl) is not None:
                return n
        from shared.errors import StoreError
        raise StoreError(f"counter {kind}/{key}: too much contention after {attempts} attempts")

    def retries(self, lineage: str) -> int:
        e = self.state_get("lineage", lineage)
        return int(e.value.get("count", 0)) if e else 0

    def add_retry(self, lineage: str) -> int:
        return self.incr("lineage", lineage)

    def watermark(self, workspace: str) -> int | None:
        e = self.state_get("watermark", workspace)
        return int(e.value["ms"]) if e and "ms" in e.value else None

    def set_watermark(self, workspace: str, ms: int) -> None:
        self.state_put("watermark", workspace, {"ms": int(ms)})

    def cache_get(self, fingerprint: str) -> dict[str, Any] | None:
        e = self.state_get("llmcache", fingerprint)
        return e.value if e else None

    def cache_put(self, fingerprint: str, value: Mapping[str, Any], ttl_s: int) -> None:
        self.state_put("llmcache", fingerprint, value, ttl_s=ttl_s)

    def close(self) -> None:  # pragma: no cover - backends override when they hold resources
        pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _storage_choice(settings: Any) -> tuple[str, str, str]:
    """(backend, value, setting) for the settings: backend is "tables-key" (connection string),
    "tables-identity" (account URL) or "sqlite" (file path); setting is the name to check."""
    from shared.errors import ConfigError

    storage = (getattr(settings, "storage", "") or "").strip()
    setting = "TRIAGE_STORAGE"
    if not storage:
        extra = getattr(settings, "extra", None) or {}
        webjobs = (getattr(settings, "azure_webjobs_storage", "") or "").strip()
        if webjobs:
            storage, setting = webjobs, "AzureWebJobsStorage"
        elif (extra.get("AzureWebJobsStorage__tableServiceUri") or "").strip():
            storage = extra["AzureWebJobsStorage__tableServiceUri"].strip()
            setting = "AzureWebJobsStorage__tableServiceUri"
        elif (extra.get("AzureWebJobsStorage__accountName") or "").strip():
            storage = f"https://{extra['AzureWebJobsStorage__accountName'].strip()}.table.core.windows.net"
            setting = "AzureWebJobsStorage__accountName"
        else:
            return "sqlite", os.path.join(".triage", "triage.db"), setting
    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///"):]
        if not path or path == ":memory:":
            raise ConfigError(f"{setting}: give a database file, e.g. sqlite:///.triage/triage.db")
        return "sqlite", path, setting
    if storage.startswith("https://"):
        return "tables-identity", storage, setting
    lowered = storage.lower()
    if "=" in storage and any(k in lowered for k in ("usedevelopmentstorage", "accountname", "tableendpoint",
                                                     "sharedaccesssignature")):
        return "tables-key", storage, setting
    raise ConfigError(f"{setting}: not an Azure Storage connection string, an https:// table account URL "
                      "or a sqlite:/// URL")


def open_store(settings: Any, *, check: bool = True, credential: Any = None, **options: Any) -> Store:
    """Pick the backend from settings.storage (TRIAGE_STORAGE), else AzureWebJobsStorage,
    else a SQLite file under ./.triage/. Raises StoreUnavailable naming the setting to check.

    ``check`` (default) creates the tables and so proves the store is reachable. ``credential``
    replaces DefaultAzureCredential for an account URL; ``options`` go to the Table Storage
    client (e.g. ``retry_total``, ``retry_backoff_factor``, ``table_prefix``)."""
    from shared.errors import StoreError, StoreUnavailable

    backend, value, setting = _storage_choice(settings)
    if backend == "sqlite":
        from shared._store_sqlite import SqliteStore

        store: Store = SqliteStore(value)
        where = str(getattr(store, "path", value))
    else:
        from shared._store_tables import TablesStore

        try:
            if backend == "tables-identity":
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                store = TablesStore(value, credential, **options)
            else:
                store = TablesStore.from_connection_string(value, **options)
        except ValueError as exc:
            from shared.errors import ConfigError

            raise ConfigError(f"{setting}: {exc}") from exc
        where = getattr(store, "endpoint", "")
    if check:
        try:
            store.check()  # type: ignore[attr-defined]
        except StoreError as exc:
            store.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreUnavailable(f"the decision store at {where} is unreachable; check {setting} ({reason})") from exc
    log.info("decision store: %s", store)
    return store
