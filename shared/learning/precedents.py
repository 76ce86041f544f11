"""Precedents: a person's correction that takes effect, with or without a model.

A correction (``feedback KEY --verdict wrong --action A``, ``POST /api/feedback``, or an email
link followed by a correction) on a decision with a failure fingerprint becomes a precedent: the
next failure of the same job (or, with scope ``workspace``, of any job of the workspace) with
the same fingerprint is decided ``A`` with ``decided_by: precedent`` and a reason that cites the
correction. The policy still applies to what a precedent decides (``shared.decide.policy.enforce``):
a precedent toward retrying obeys the retry limits and the trust levels (a firm verdict of the
rules is never retried automatically: the retry becomes an approval request).

Precedents live in ``TriageState`` (kind ``precedents``), one entry per scope and fingerprint,
plus an ``index`` entry listing them (for ``python -m shared precedents list``). A precedent
expires ``TRIAGE_PRECEDENT_TTL`` (default 90 days) after it was made or last confirmed; a
``correct`` verdict on a decision a precedent made confirms it, a ``wrong`` one with another
action replaces it, and withdrawing the correction (a later ``correct`` verdict on the corrected
decision) removes it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from shared.errors import StoreError
from shared.models import Action, Category, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.snapshot import Snapshot
    from shared.store import DecisionRecord, Store

__all__ = ["KIND", "SCOPES", "precedent_key", "record_precedent", "find_precedent", "apply_precedent",
           "precedent_decision",
           "note_fired", "list_precedents", "get_precedent", "remove_precedent", "on_feedback"]

log = logging.getLogger(__name__)

KIND = "precedents"
SCOPES = ("job", "workspace")
_INDEX = "index"
_INDEX_CAP = 1000
_FIRED_KEYS = 20
_ATTEMPTS = 8
_DAY_MS = 86400 * 1000


def precedent_key(scope: str, workspace: str, job_id: str, fingerprint: str) -> str:
    """The state key of a precedent: short, and free of the characters Table keys refuse."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    raw = f"{scope}\n{(workspace or '').rstrip('/').lower()}\n{job_id if scope == 'job' else ''}\n{fingerprint}"
    return ("j-" if scope == "job" else "w-") + hashlib.sha256(raw.encode()).hexdigest()[:32]


def _ttl_ms(settings: "Settings") -> int:
    return int(getattr(settings, "precedent_ttl_s", 90 * 86400)) * 1000


def _update(store: "Store", key: str, change: Any) -> dict[str, Any] | None:
    """Read-modify-write one entry under etag; ``change(value|None) -> value|None`` (None: leave it)."""
    for _ in range(_ATTEMPTS):
        cur = store.state_get(KIND, key)
        new = change(dict(cur.value) if cur else None)
        if new is None:
            return None
        put = (store.state_put(KIND, key, new, etag=cur.etag) if cur is not None
               else store.state_put(KIND, key, new, if_absent=True))
        if put is not None:
            return dict(put.value)
    raise StoreError(f"precedent {key}: too much contention")


def _index(store: "Store", key: str, *, add: bool) -> None:
    def change(value: dict[str, Any] | None) -> dict[str, Any] | None:
        keys = [k for k in (value or {}).get("keys", []) if k != key]
        if add:
            keys.append(key)
        elif value is None or len(keys) == len(value.get("keys", [])):
            return None
        return {"keys": keys[-_INDEX_CAP:]}
    _update(store, _INDEX, change)


def record_precedent(store: "Store", record: "DecisionRecord", settings: "Settings", *, scope: str = "job",
                     now_ms: int | None = None) -> dict[str, Any] | None:
    """Make (or replace) the precedent of ``record``'s correction. None when the record is not a
    correction or has no fingerprint."""
    fb = record.feedback or {}
    if fb.get("verdict") != "wrong" or not fb.get("correct_action") or not record.fingerprint:
        return None
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    key = precedent_key(scope, record.workspace, record.job_id, record.fingerprint)
    value = {
        "id": key, "scope": scope, "workspace": record.workspace, "job_id": record.job_id,
        "fingerprint": record.fingerprint, "action": str(fb["correct_action"]),
        "category": str(fb.get("correct_category") or record.category or "UNKNOWN"),
        "decision_key": record.decision_key, "decided_action": record.action, "decided_category": record.category,
        "comment": str(fb.get("comment") or "")[:300], "source": str(fb.get("source") or ""),
        "excerpt": (record.excerpt or "")[-300:], "created_at": now, "confirmed_at": now,
        "expires_at": now + _ttl_ms(settings),
    }

    def change(old: dict[str, Any] | None) -> dict[str, Any]:
        keep = {k: old[k] for k in ("fired", "fired_keys", "last_fired_at") if old and k in old}
        return {**value, **keep}
    out = _update(store, key, change)
    _index(store, key, add=True)
    log.info("precedent %s: %s of job %s -> %s (%s scope)", key, record.fingerprint, record.job_id,
             value["action"], scope)
    return out


def get_precedent(store: "Store", key: str) -> dict[str, Any] | None:
    entry = store.state_get(KIND, key)
    return dict(entry.value) if entry and key != _INDEX else None


def list_precedents(store: "Store", *, now_ms: int | None = None, include_expired: bool = False
                    ) -> list[dict[str, Any]]:
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    entry = store.state_get(KIND, _INDEX)
    out = []
    for key in (entry.value.get("keys", []) if entry else []):
        p = get_precedent(store, key)
        if p and (include_expired or int(p.get("expires_at") or 0) > now):
            p["expired"] = int(p.get("expires_at") or 0) <= now
            out.append(p)
    return sorted(out, key=lambda p: -int(p.get("confirmed_at") or 0))


def remove_precedent(store: "Store", key: str) -> bool:
    """Remove a precedent (it stops applying at once). False when there was none."""
    cur = store.state_get(KIND, key)
    if cur is None or key == _INDEX:
        return False
    # State entries are never deleted by the store contract: an expired tombstone is the same thing.
    store.state_put(KIND, key, {**cur.value, "expires_at": 0, "removed": True}, etag=cur.etag)
    _index(store, key, add=False)
    return True


def find_precedent(store: "Store", *, workspace: str, job_id: str, fingerprint: str,
                   now_ms: int | None = None) -> dict[str, Any] | None:
    """The live precedent for this failure: the job's first, then the workspace's."""
    if not fingerprint:
        return None
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    for scope in SCOPES:
        p = get_precedent(store, precedent_key(scope, workspace, job_id, fingerprint))
        if p and int(p.get("expires_at") or 0) > now and not p.get("removed"):
            return p
    return None


def _date(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def apply_precedent(decision: Decision, precedent: Mapping[str, Any]) -> Decision:
    """The decision the precedent makes (the policy is applied afterwards, as to any decision)."""
    try:
        action = Action(str(precedent.get("action")))
        category = Category(str(precedent.get("category") or decision.category.value))
    except ValueError:
        return decision
    who = precedent.get("source") or "a person"
    comment = str(precedent.get("comment") or "")
    cite = (f"precedent {precedent.get('id')}: a person ({who}) corrected decision {precedent.get('decision_key')} "
            f"on {_date(precedent.get('confirmed_at') or precedent.get('created_at'))} "
            f"({precedent.get('decided_category')} -> {precedent.get('decided_action')} was wrong, "
            f"{category.value} -> {action.value} is right)" + (f": {comment[:160]}" if comment else ""))
    d = replace(decision, category=category, action=action, decided_by="precedent",
                confidence=max(float(decision.confidence), 0.9),
                params=dict(decision.params) if action is Action.RETRY_WITH_NEW_PARAMS and decision.params
                else ({"num_workers_factor": 2} if action is Action.RETRY_WITH_NEW_PARAMS else {}),
                notes=[*decision.notes, f"rules said {decision.category.value} -> {decision.action.value}; {cite}"],
                precedent={k: precedent.get(k) for k in ("id", "scope", "decision_key", "action", "category")})
    where = f" in task {decision.deciding_task}" if decision.deciding_task else ""
    d.reason = f"{category.value}{where} -> {action.value}: {cite}"
    return d


def precedent_decision(store: "Store", snapshot: "Snapshot", decision: Decision) -> Decision | None:
    """The decision a live precedent makes for this failure, or None (shared.triage calls this).
    Advisory like the rest of learning: a store hiccup here never blocks a decision."""
    try:
        found = find_precedent(store, workspace=snapshot.workspace_host, job_id=str(snapshot.job_id or "nojob"),
                               fingerprint=decision.fingerprint)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not read the precedents of run %s: %s", snapshot.run_id, exc)
        return None
    return apply_precedent(decision, found) if found else None


def note_fired(store: "Store", precedent: Mapping[str, Any] | str, decision_key: str, *,
               now_ms: int | None = None) -> None:
    """Count a decision the precedent made (advisory: never blocks the decision)."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    precedent_id = str(precedent.get("id") or "") if isinstance(precedent, Mapping) else str(precedent)
    if not precedent_id:
        return

    def change(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None or decision_key in value.get("fired_keys", []):
            return None
        return {**value, "fired": int(value.get("fired") or 0) + 1, "last_fired_at": now,
                "fired_keys": [*value.get("fired_keys", []), decision_key][-_FIRED_KEYS:]}
    try:
        _update(store, precedent_id, change)
    except Exception as exc:  # noqa: BLE001
        log.warning("precedent %s: firing not counted: %s", precedent_id, exc)


def on_feedback(store: "Store", record: "DecisionRecord", settings: "Settings", *, scope: str | None = None,
                now_ms: int | None = None) -> dict[str, Any] | None:
    """Keep precedents in step with a verdict just recorded on ``record``: a correction makes or
    replaces one; ``correct`` on a decision a precedent made confirms it (its expiry starts again);
    ``correct`` on a decision that had been corrected withdraws the precedent it made."""
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    fb = record.feedback or {}
    if fb.get("verdict") == "wrong" and fb.get("correct_action"):
        return record_precedent(store, record, settings, scope=scope or "job", now_ms=now)
    if fb.get("verdict") != "correct":
        return None
    made_by = (record.decision or {}).get("precedent") or {}
    if isinstance(made_by, Mapping) and made_by.get("id"):
        ttl = _ttl_ms(settings)
        return _update(store, str(made_by["id"]), lambda v: None if v is None or v.get("removed") else
                       {**v, "confirmed_at": now, "expires_at": now + ttl})
    for sc in SCOPES:
        key = precedent_key(sc, record.workspace, record.job_id, record.fingerprint)
        p = get_precedent(store, key)
        if p and p.get("decision_key") == record.decision_key and not p.get("removed"):
            remove_precedent(store, key)
    return None
