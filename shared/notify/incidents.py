"""One incident per outage: failures of many jobs with one cause share one incident.

When a storage account throttles or a metastore goes down, dozens of jobs fail the same way
within minutes. Their escalations join one incident — one page with one PagerDuty ``dedup_key``,
updated as jobs join ("12 jobs failing: …") and resolved when they have all recovered — and the
owners' notices say how many other jobs fail the same way.

- ``cause_of(snapshot, decision)``: what the failures share. An infrastructure cause when the
  error names one (the same storage host answering 503, the same cloud quota or throttling code,
  the metastore or DBFS being unhealthy), else the failure fingerprint (same category and the
  same normalised root cause).
- ``join(store, settings, ...)``: adds the job to the cause's incident (``TriageState`` kind
  ``incident``) with conditional writes under the entry's etag, so two workers joining at the
  same moment both land in the one incident and only one of them opens it. An incident whose
  last job joined more than ``TRIAGE_INCIDENT_WINDOW`` ago, or that was resolved, is not joined:
  the next failure opens a new one (a new generation, a new ``dedup_key``).
- ``mark_recovered(...)``: a job of the incident recovered (its run was repaired successfully,
  or a person marked the decision handled); when every paged job has, the incident is resolved
  and the caller sends the resolve event, exactly once (the write that resolves it wins).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from shared.errors import StoreError
from shared.models import Action, Category, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot
    from shared.store import Store

__all__ = ["KIND", "Cause", "Incident", "cause_of", "join", "solo", "get", "mark_recovered", "incident_key"]

KIND = "incident"
_MAX_JOBS = 60                  # jobs listed on an incident (the count goes on beyond): the entry stays
                                # well under Table Storage's 64 KiB per property
_KEEP_S = 7 * 86400             # an entry outlives its window (its generation number is carried)
_ATTEMPTS = 25

# --- causes ---------------------------------------------------------------------------------

_STORAGE_HOST = re.compile(r"\b([a-z0-9][a-z0-9-]{1,62}\.(?:dfs|blob|table|queue|file)\.core\."
                           r"(?:windows\.net|chinacloudapi\.cn|usgovcloudapi\.net))\b", re.I)
_STORAGE_BUSY = re.compile(r"\b503\b|ServerBusy|Service Unavailable|\bthrottl|Egress is over the account limit|"
                           r"Ingress is over the account limit|OperationTimedOut", re.I)
_QUOTA = re.compile(r"\b(AZURE_QUOTA_EXCEEDED_EXCEPTION|GCP_QUOTA_EXCEEDED|AWS_INSUFFICIENT_INSTANCE_CAPACITY_FAILURE|"
                    r"CLOUD_PROVIDER_RESOURCE_STOCKOUT|AZURE_RESOURCE_PROVIDER_THROTTLING|"
                    r"SUBNET_EXHAUSTED_FAILURE|QuotaExceeded|OperationNotAllowed|SkuNotAvailable|"
                    r"ZonalAllocationFailed|AllocationFailed|QUOTA_EXCEEDED)\b")
_METASTORE = re.compile(r"\bMETASTORE_COMPONENT_UNHEALTHY\b|\bMETASTORE_DOWN\b|"
                        r"Unable to instantiate [\w.]*SessionHiveMetaStoreClient|"
                        r"\b(?:hive )?metastore\b[^\n]{0,80}?\b(?:unavailable|unreachable|unhealthy|is down|"
                        r"timed out|connection refused|could not connect)|"
                        r"\b(?:could not|cannot|failed to) connect to (?:the )?(?:hive )?metastore\b", re.I)
_DBFS = re.compile(r"\bDBFS_COMPONENT_UNHEALTHY\b|\bDBFS_DOWN\b|"
                   r"\bdbfs\b[^\n]{0,80}?\b(?:unavailable|unreachable|unhealthy|is down|503)", re.I)
# Categories whose failures can have a shared infrastructure cause (a CODE error that mentions
# a storage host is still about the code).
_INFRA_CATEGORIES = frozenset({Category.NETWORK, Category.INFRASTRUCTURE, Category.TIMEOUT, Category.UNKNOWN,
                               Category.DEPENDENCY, Category.CONCURRENCY, Category.RESOURCE})


@dataclass(frozen=True)
class Cause:
    key: str          # what the failures share, e.g. "storage-503:acct.dfs.core.windows.net"
    label: str        # in words, for people: "storage account acct.dfs.core.windows.net answering 503"


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or url or "").lower()
    except ValueError:
        return url or ""


def cause_of(snapshot: "Snapshot", decision: Decision) -> Cause:
    """The cause this failure shares with others; the fingerprint when no infrastructure cause
    is named. Workspace-level causes (quota, metastore, DBFS, fingerprint) carry the workspace."""
    text = "\n".join([decision.excerpt or "", *[t.state.termination_code or "" for t in snapshot.failed_tasks],
                      snapshot.state.termination_code or "" if hasattr(snapshot, "state") else ""])
    workspace = _host(snapshot.workspace_host)
    try:
        category = Category(str(decision.category))
    except ValueError:
        category = Category.UNKNOWN
    if category in _INFRA_CATEGORIES:
        if _STORAGE_BUSY.search(text):
            m = _STORAGE_HOST.search(text)
            if m:
                host = m.group(1).lower()
                return Cause(f"storage-503:{host}", f"storage account {host} answering 503 (busy)")
        m = _QUOTA.search(text)
        if m:
            return Cause(f"quota:{workspace}:{m.group(1)}", f"cloud capacity or quota ({m.group(1)})")
        if _METASTORE.search(text):
            return Cause(f"metastore:{workspace}", "the metastore is unavailable")
        if _DBFS.search(text):
            return Cause(f"dbfs:{workspace}", "DBFS is unavailable")
    fp = decision.fingerprint or hashlib.sha256((decision.excerpt or "").encode()).hexdigest()[:16]
    return Cause(f"fp:{workspace}:{category.value}:{fp}", f"the same {category.value} failure")


def incident_key(cause: Cause) -> str:
    return cause.key


# --- the incident ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Incident:
    key: str
    dedup_key: str
    label: str
    generation: int
    status: str                            # open | resolved
    jobs: tuple[dict[str, Any], ...]       # {"job_id", "name", "run_id", "decision_key", "action", "at", "recovered"}
    count: int                             # jobs that joined (may exceed the listed ones)
    opened_at: int
    last_at: int
    joined: bool = False                   # this call added the job (or its new failure)
    opened: bool = False                   # this call opened the incident
    resolved_now: bool = False             # this call resolved it (send the resolve event)
    etag: str | None = None

    def escalated(self) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j.get("action") == Action.ESCALATE.value]

    def others(self, job_id: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j.get("job_id") != str(job_id)]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "dedup_key": self.dedup_key, "label": self.label, "generation": self.generation,
                "status": self.status, "count": self.count, "jobs": len(self.jobs)}


def _dedup_key(key: str, generation: int) -> str:
    return f"triage-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:20]}-{generation}"


def _view(key: str, value: Mapping[str, Any], etag: str | None, **flags: bool) -> Incident:
    jobs = value.get("jobs") if isinstance(value.get("jobs"), Mapping) else {}
    listed = tuple({"job_id": str(j), **dict(v)} for j, v in sorted(jobs.items(), key=lambda kv: kv[1].get("at", 0)))
    return Incident(key=key, dedup_key=str(value.get("dedup_key") or _dedup_key(key, int(value.get("n") or 1))),
                    label=str(value.get("label") or ""), generation=int(value.get("n") or 1),
                    status=str(value.get("status") or "open"), jobs=listed,
                    count=int(value.get("count") or len(listed)), opened_at=int(value.get("opened_at") or 0),
                    last_at=int(value.get("last_at") or 0), etag=etag, **flags)


def solo(cause: Cause, *, job_id: str, job_name: str, run_id: int, decision_key: str, action: str,
         now_ms: int) -> Incident:
    """The incident a failure would open on its own (for previews: nothing is stored)."""
    member = {"name": str(job_name or "")[:120], "run_id": int(run_id or 0), "decision_key": str(decision_key),
              "action": str(action), "at": int(now_ms), "recovered": False}
    value = {"n": 1, "dedup_key": _dedup_key(cause.key, 1), "label": cause.label, "status": "open",
             "opened_at": int(now_ms), "last_at": int(now_ms), "count": 1, "jobs": {str(job_id or "nojob"): member}}
    return _view(cause.key, value, None)


def get(store: "Store", key: str) -> Incident | None:
    entry = store.state_get(KIND, key)
    return _view(key, entry.value, entry.etag) if entry is not None else None


def join(store: "Store", settings: "Settings", cause: Cause, *, job_id: str, job_name: str, run_id: int,
         decision_key: str, action: str, now_ms: int) -> Incident:
    """Add this failure to its cause's open incident, or open one. Idempotent per decision key:
    joining again returns the incident with ``joined`` False."""
    window_ms = int(settings.incident_window_s) * 1000
    ttl = int(settings.incident_window_s) + _KEEP_S
    job_id = str(job_id or "nojob")
    member = {"name": str(job_name or "")[:80], "run_id": int(run_id or 0), "decision_key": str(decision_key)[:60],
              "action": str(action), "at": int(now_ms), "recovered": False}
    for _ in range(_ATTEMPTS):
        entry = store.state_get(KIND, cause.key)
        value = dict(entry.value) if entry is not None else {}
        current = (entry is not None and value.get("status", "open") == "open"
                   and now_ms - int(value.get("last_at") or 0) <= window_ms)
        if not current:
            n = int(value.get("n") or 0) + 1
            new = {"n": n, "dedup_key": _dedup_key(cause.key, n), "label": cause.label, "status": "open",
                   "opened_at": int(now_ms), "last_at": int(now_ms), "count": 1, "jobs": {job_id: member}}
            if entry is None:
                put = store.state_put(KIND, cause.key, new, if_absent=True, ttl_s=ttl)
            else:
                put = store.state_put(KIND, cause.key, new, etag=entry.etag, ttl_s=ttl)
            if put is not None:
                return _view(cause.key, put.value, put.etag, joined=True, opened=True)
            continue
        jobs = dict(value.get("jobs") or {})
        known = jobs.get(job_id)
        if known is not None and known.get("decision_key") == member["decision_key"]:
            if known.get("action") == action or known.get("action") == Action.ESCALATE.value:
                return _view(cause.key, value, entry.etag)
        if known is None and len(jobs) >= _MAX_JOBS:
            # Listed jobs are bounded (the entry must stay small); the count still grows.
            value.update(count=int(value.get("count") or len(jobs)) + 1, last_at=int(now_ms))
        else:
            if known is None:
                value["count"] = int(value.get("count") or len(jobs)) + 1
            if known is not None and known.get("action") == Action.ESCALATE.value:
                member["action"] = Action.ESCALATE.value     # an escalated job stays on the page
            jobs[job_id] = member
            value.update(jobs=jobs, last_at=int(now_ms))
        put = store.state_put(KIND, cause.key, value, etag=entry.etag, ttl_s=ttl)
        if put is not None:
            return _view(cause.key, put.value, put.etag, joined=True)
    raise StoreError(f"incident {cause.key}: too much contention after {_ATTEMPTS} attempts")


def mark_recovered(store: "Store", settings: "Settings", key: str, *, job_id: str, decision_key: str | None,
                   now_ms: int) -> Incident | None:
    """Mark one job of the incident recovered. When every escalated job has recovered the
    incident is resolved, and the returned view says ``resolved_now`` to exactly one caller."""
    ttl = int(settings.incident_window_s) + _KEEP_S
    for _ in range(_ATTEMPTS):
        entry = store.state_get(KIND, key)
        if entry is None:
            return None
        value = dict(entry.value)
        if value.get("status") == "resolved":
            return _view(key, value, entry.etag)
        jobs = dict(value.get("jobs") or {})
        job = jobs.get(str(job_id))
        if job is None or (decision_key and job.get("decision_key") != decision_key):
            return _view(key, value, entry.etag)
        if not job.get("recovered"):
            jobs[str(job_id)] = {**job, "recovered": True, "recovered_at": int(now_ms)}
        paged = [j for j in jobs.values() if j.get("action") == Action.ESCALATE.value] or list(jobs.values())
        resolved = all(j.get("recovered") for j in paged)
        value.update(jobs=jobs)
        if resolved:
            value.update(status="resolved", resolved_at=int(now_ms))
        put = store.state_put(KIND, key, value, etag=entry.etag, ttl_s=ttl)
        if put is not None:
            return _view(key, put.value, put.etag, resolved_now=resolved)
    raise StoreError(f"incident {key}: too much contention after {_ATTEMPTS} attempts")
