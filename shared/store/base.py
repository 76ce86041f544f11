"""The store contract: records, claims, state entries and the ``Store`` interface.

Backends (``_sqlite``, ``_tables``) implement it; ``shared.store.open_store`` picks one.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from shared.errors import StoreError

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "DecisionRecord",
    "Claim",
    "Updated",
    "StateEntry",
    "Store",
    "now_ms",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STATUSES = ("decided", "acting", "retrying", "acted", "escalated", "failed", "duplicate")  # docs/lifecycle.md


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


