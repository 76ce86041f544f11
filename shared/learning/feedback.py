"""Feedback: a person's verdict on a decision, and the corrections the model learns from.

``record_feedback(store, key, "correct"|"wrong", correct_action=..., comment=..., source=...)``
stores the verdict on the decision (conditional on its etag; retried on a conflict). It is
idempotent: the same verdict again changes nothing, and a verdict without details (an email
link) does not erase the details an earlier one gave. A different verdict replaces the current
one and the old one is kept in ``feedback["history"]`` (the last few).

A verdict ``wrong`` with a ``correct_action`` is a *correction*. Corrections are indexed in
``TriageState`` (kind ``corrections``: key ``recent`` holds the latest ones, ``fp:<fingerprint>``
the latest per failure fingerprint), so ``corrections_for(store, decision)`` finds the few most
similar ones without scanning the decisions table: same fingerprint first, then same category,
then the most words in common in the error excerpt. ``shared.llm.consult(..., corrections=...)``
puts them in the prompt as examples.

Comments are bounded and redacted (``shared.redact``) before they are stored.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Mapping

from shared.errors import DecisionNotFound, StoreError
from shared.models import Action, Category
from shared.redact import redact
from shared.store import DecisionRecord, Store

__all__ = [
    "VERDICTS",
    "SOURCES",
    "MAX_COMMENT_CHARS",
    "MAX_CORRECTIONS",
    "parse_action",
    "parse_category",
    "clean_comment",
    "record_feedback",
    "corrections_for",
]

log = logging.getLogger(__name__)

VERDICTS = ("correct", "wrong")
SOURCES = ("cli", "api", "link")
MAX_COMMENT_CHARS = 1000
MAX_KEY_CHARS = 256
MAX_CORRECTIONS = 20          # corrections_for never returns more than this
_HISTORY = 10                 # earlier verdicts kept on a decision
_RECENT = 50                  # corrections kept in the "recent" index
_PER_FINGERPRINT = 5          # corrections kept per fingerprint
_EXCERPT_CHARS = 400          # excerpt kept per indexed correction
_ATTEMPTS = 5
_KIND = "corrections"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{2,}")


# --- validation ----------------------------------------------------------------------------------

def parse_action(value: Any) -> Action | None:
    """An Action from 'RETRY', 'retry', 'retry-with-new-params' ...; None for None/''.
    ValueError naming the valid actions otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("correct_action must be a string")
    name = value.strip().upper().replace("-", "_")
    try:
        return Action(name)
    except ValueError:
        valid = ", ".join(a.value for a in Action)
        raise ValueError(f"correct_action {value[:40]!r} is not one of {valid}") from None


def parse_category(value: Any) -> Category | None:
    """A Category from its name (any case); None for None/''. ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError("correct_category must be a string")
    try:
        return Category(value.strip().upper())
    except ValueError:
        valid = ", ".join(c.value for c in Category)
        raise ValueError(f"correct_category {value[:40]!r} is not one of {valid}") from None


def clean_comment(comment: Any) -> str | None:
    """A comment made safe to store: control characters removed, secrets redacted, at most
    MAX_COMMENT_CHARS characters. None for None or blank."""
    if comment is None:
        return None
    if not isinstance(comment, str):
        raise ValueError("comment must be a string")
    text = _CONTROL.sub(" ", comment.replace("\r\n", "\n")).strip()
    if not text:
        return None
    limit = MAX_COMMENT_CHARS * 4
    if len(text) > limit:
        # Cut at a space near the limit when there is one: a secret cut in half no longer looks
        # like a secret to redact().
        space = max(text.rfind(" ", limit - 512, limit), text.rfind("\n", limit - 512, limit))
        text = text[:space] if space > 0 else text[:limit]
    text = redact(text)
    if len(text) > MAX_COMMENT_CHARS:
        text = text[: MAX_COMMENT_CHARS - 1].rstrip() + "…"
    return text


def _check_key(decision_key: Any) -> str:
    if not isinstance(decision_key, str) or not decision_key.strip():
        raise ValueError("decision_key must be a non-empty string such as 123456-0 (<run_id>-<repair_count>)")
    key = decision_key.strip()
    if len(key) > MAX_KEY_CHARS or _CONTROL.search(key):
        raise ValueError(f"decision_key must be printable and at most {MAX_KEY_CHARS} characters")
    return key


def _check_verdict(verdict: Any) -> str:
    v = verdict.strip().lower() if isinstance(verdict, str) else ""
    if v not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    return v


# --- recording -------------------------------------------------------------------------------------

def _new_feedback(record: DecisionRecord, verdict: str, action: Action | None, category: Category | None,
                  comment: str | None, source: str, now: int) -> dict[str, Any] | None:
    """The record's feedback after this verdict, or None when nothing changes."""
    if verdict == "correct":
        if action is not None and action.value != record.action:
            raise ValueError(f"verdict 'correct' confirms the decision's action {record.action}; "
                             f"to name another action ({action.value}) give verdict 'wrong'")
        if category is not None and category.value != record.category:
            raise ValueError(f"verdict 'correct' confirms the decision's category {record.category}; "
                             f"to name another category ({category.value}) give verdict 'wrong'")
        action = category = None
    elif (action is not None and action.value == record.action
          and (category is None or category.value == record.category)):
        raise ValueError(f"verdict 'wrong' with correct_action {action.value}, which is what was decided: "
                         "name the action that should have been taken, or add correct_category")
    old = dict(record.feedback or {})
    fields = {"correct_action": action.value if action else None,
              "correct_category": category.value if category else None,
              "comment": comment}
    if old.get("verdict") == verdict:
        merged = {k: (v if v is not None else old.get(k)) for k, v in fields.items()}
        if all(merged[k] == old.get(k) for k in fields):
            return None
        new = {**old, **{k: v for k, v in merged.items() if v is not None}, "source": source, "at": now}
        return new
    history = list(old.pop("history", []) or [])
    if old.get("verdict"):
        history.append({k: v for k, v in old.items() if k != "history"})
    new = {"verdict": verdict, **{k: v for k, v in fields.items() if v is not None}, "source": source, "at": now}
    if history:
        new["history"] = history[-_HISTORY:]
    return new


def record_feedback(store: Store, decision_key: str, verdict: str, *, correct_action: str | None = None,
                    correct_category: str | None = None, comment: str | None = None, source: str = "cli",
                    now_ms: int | None = None, job_id: str | None = None, settings: Any = None,
                    scope: str | None = None) -> DecisionRecord:
    """Record a person's verdict on a decision and return the stored record.

    ``verdict``: ``correct`` or ``wrong``; ``correct_action`` (and optionally ``correct_category``)
    say what should have been decided. Raises ``ValueError`` for invalid input (the message says
    what to fix) and ``DecisionNotFound`` when no decision has that key.

    A correction becomes a precedent (``shared.learning.precedents``) for the job, or for the
    workspace with ``scope="workspace"``; ``settings`` gives its lifetime (TRIAGE_PRECEDENT_TTL)."""
    if scope is not None and scope not in ("job", "workspace"):
        raise ValueError("scope must be job or workspace")
    key = _check_key(decision_key)
    v = _check_verdict(verdict)
    action = parse_action(correct_action)
    category = parse_category(correct_category)
    text = clean_comment(comment)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    record = store.get(key, job_id=job_id)
    for _ in range(_ATTEMPTS):
        if record is None:
            raise DecisionNotFound(f"no decision with key {key!r}" + (f" for job {job_id}" if job_id else ""))
        feedback = _new_feedback(record, v, action, category, text, source, now)
        if feedback is None:
            if scope == "workspace":     # the same correction again, now for the whole workspace
                _precedent(store, record, settings, scope, now)
            return record
        changed = DecisionRecord.from_dict(record.to_dict(), etag=record.etag)
        changed.feedback = feedback
        result = store.update(changed)
        if result.ok and result.record is not None:
            log.info("feedback on decision %s: %s (%s)", key, v, source)
            _index(store, result.record, now)
            _precedent(store, result.record, settings, scope, now)
            return result.record
        record = result.record
    raise StoreError(f"decision {key}: feedback not recorded, the decision kept changing ({_ATTEMPTS} attempts)")


def _precedent(store: Store, record: DecisionRecord, settings: Any, scope: str | None, now: int) -> None:
    from shared.config import Settings
    from shared.learning.precedents import on_feedback

    try:
        on_feedback(store, record, settings if settings is not None else Settings(), scope=scope, now_ms=now)
    except StoreError as exc:   # the verdict is stored; the precedent lags (the next verdict retries it)
        log.warning("precedent not updated for decision %s: %s", record.decision_key, exc)


# --- the corrections index ---------------------------------------------------------------------------

def _correction(record: DecisionRecord) -> dict[str, Any] | None:
    fb = record.feedback or {}
    if fb.get("verdict") != "wrong" or not fb.get("correct_action"):
        return None
    excerpt = redact(record.excerpt or "")
    if len(excerpt) > _EXCERPT_CHARS:
        half = _EXCERPT_CHARS // 2
        excerpt = excerpt[:half] + " … " + excerpt[-half:]
    item = {
        "decision_key": record.decision_key,
        "job_id": record.job_id,
        "fingerprint": record.fingerprint,
        "decided_category": record.category,
        "decided_action": record.action,
        # what shared.llm reads: the correct category and action, the error, the person's note
        "category": fb.get("correct_category") or record.category,
        "action": fb["correct_action"],
        "excerpt": excerpt,
        "comment": fb.get("comment") or "",
        "at": int(fb.get("at") or record.updated_at),
    }
    return {k: v for k, v in item.items() if v not in (None, "")}


def _put_item(store: Store, key: str, item: dict[str, Any] | None, decision_key: str, cap: int) -> None:
    for _ in range(_ATTEMPTS):
        cur = store.state_get(_KIND, key)
        items = [i for i in (cur.value.get("items", []) if cur else []) if isinstance(i, Mapping)
                 and i.get("decision_key") != decision_key]
        if item is None and cur is not None and len(items) == len(cur.value.get("items", [])):
            return   # not in this index: nothing to remove
        if item is None and cur is None:
            return
        if item is not None:
            items.append(item)
        items = sorted(items, key=lambda i: int(i.get("at") or 0))[-cap:]
        value = {"items": items}
        done = (store.state_put(_KIND, key, value, etag=cur.etag) if cur is not None
                else store.state_put(_KIND, key, value, if_absent=True))
        if done is not None:
            return
    raise StoreError(f"corrections index {key}: too much contention")


def _index(store: Store, record: DecisionRecord, now: int) -> None:
    """Add the record's correction to the index, or take it out when it no longer is one."""
    item = _correction(record)
    try:
        _put_item(store, "recent", item, record.decision_key, _RECENT)
        if record.fingerprint:
            _put_item(store, f"fp:{record.fingerprint}", item, record.decision_key, _PER_FINGERPRINT)
    except StoreError as exc:   # the verdict is stored; only the model's examples lag
        log.warning("corrections index not updated for decision %s: %s", record.decision_key, exc)


# --- finding similar corrections -----------------------------------------------------------------------

def _words(text: str) -> set[str]:
    from shared.decide.fingerprint import normalise

    return set(_WORD.findall(normalise(text or "")[:4000]))


def _subject(subject: Any) -> tuple[str, str, str, str]:
    """(fingerprint, category, excerpt, decision_key) of a Decision, DecisionRecord, Snapshot,
    mapping, or a bare fingerprint string."""
    if isinstance(subject, str):
        return subject, "", "", ""
    if isinstance(subject, DecisionRecord):
        return subject.fingerprint, subject.category, subject.excerpt, subject.decision_key
    if isinstance(subject, Mapping):
        return (str(subject.get("fingerprint") or ""), str(subject.get("category") or ""),
                str(subject.get("excerpt") or ""), str(subject.get("decision_key") or ""))
    from shared.snapshot import Snapshot

    if isinstance(subject, Snapshot):
        from shared.decide.classify import classify
        from shared.decide.fingerprint import fingerprint

        c = classify(subject)
        excerpt = redact(c.excerpt)
        return fingerprint(excerpt, category=c.category.value), c.category.value, excerpt, subject.decision_key
    category = getattr(subject, "category", "")
    return (str(getattr(subject, "fingerprint", "") or ""), str(getattr(category, "value", category) or ""),
            str(getattr(subject, "excerpt", "") or ""), "")


def corrections_for(store: Store, subject: Any, *, limit: int = 5) -> list[dict[str, Any]]:
    """Up to ``limit`` (at most MAX_CORRECTIONS) human corrections most similar to ``subject``
    (a Decision, DecisionRecord, Snapshot, or a fingerprint): same fingerprint first, then the
    same category, then the most words in common with the error excerpt; newest first among
    equals. Each is a dict with ``category`` and ``action`` (the correct ones), ``excerpt``,
    ``comment``, ``decided_category``, ``decided_action``, ``fingerprint``, ``decision_key``.
    Never raises for a store problem (returns [] and logs)."""
    limit = max(0, min(int(limit), MAX_CORRECTIONS))
    if limit == 0 or store is None:
        return []
    fp, category, excerpt, own_key = _subject(subject)
    keys = ["recent"] + ([f"fp:{fp}"] if fp else [])
    items: dict[str, Mapping[str, Any]] = {}
    try:
        for key in keys:
            entry = store.state_get(_KIND, key)
            for item in (entry.value.get("items", []) if entry else []):
                if isinstance(item, Mapping) and item.get("decision_key") and item.get("action"):
                    items[str(item["decision_key"])] = item
    except Exception as exc:  # noqa: BLE001 - examples are advisory; never block a decision on them
        log.warning("could not read the corrections index: %s", type(exc).__name__)
        return []
    items.pop(own_key, None)
    mine = _words(excerpt)

    def score(item: Mapping[str, Any]) -> tuple[int, int, float, int]:
        theirs = _words(str(item.get("excerpt") or ""))
        overlap = len(mine & theirs) / len(mine | theirs) if mine and theirs else 0.0
        same_cat = bool(category) and category in (item.get("decided_category"), item.get("category"))
        return (int(bool(fp) and item.get("fingerprint") == fp), int(same_cat), round(overlap, 6),
                int(item.get("at") or 0))

    ranked = sorted(items.values(), key=score, reverse=True)
    return [dict(i) for i in ranked[:limit]]
