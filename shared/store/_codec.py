"""How records become stored rows: key escaping and size bounds shared by both store backends.

Both backends (Table Storage and SQLite) store the same flat property dictionary, built here, so
they accept the same keys and values and truncate the same way.

Keys. Table keys forbid ``/ \\ # ?`` and control characters, and ``%`` and ``'`` are accepted but
break some operations (service and emulator). So a key keeps only ``A-Z a-z 0-9 - _ .``
and writes every other character as ``!`` plus its code point in hex (``!2f`` for ``/``,
``!u00e9``-style for the rest of the Basic Multilingual Plane, ``!U0001f600`` beyond it). Escaping
is reversible. An escaped key longer than ``MAX_KEY_CHARS`` keeps a prefix and ends in ``!h`` plus
a SHA-256 digest of the original key; the original is always kept in a property as well, so
nothing is lost.

Sizes. Table Storage allows 64 KiB per string property (UTF-16, two bytes a unit) and 1 MiB per
entity. Long text fields and JSON fields are bounded to ``LONG_UNITS`` UTF-16 units, short ones
to ``SHORT_UNITS``; whatever is cut is replaced by a visible ``…[truncated N chars]`` marker. With
these bounds the largest possible entity stays well under 1 MiB (see ``max_entity_bytes``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping

from shared.store.base import STATUSES, DecisionRecord, StateEntry

__all__ = [
    "prepare_record_update",
    "prepare_state_write",
    "MAX_KEY_CHARS",
    "MAX_ID_UNITS",
    "SHORT_UNITS",
    "LONG_UNITS",
    "DECISIONS_TABLE",
    "STATE_TABLE",
    "NO_JOB",
    "escape_key",
    "unescape_key",
    "job_partition",
    "utf16_len",
    "truncate_text",
    "fit_json",
    "record_to_props",
    "props_to_record",
    "state_to_props",
    "props_to_state",
    "entity_bytes",
    "max_entity_bytes",
]

DECISIONS_TABLE = "TriageDecisions"
STATE_TABLE = "TriageState"
NO_JOB = "nojob"              # partition of one-time runs, which have no job id

MAX_KEY_CHARS = 255           # an escaped key longer than this is shortened with a digest
MAX_ID_UNITS = 4096           # a decision key, job id, state kind or state key may not be longer
SHORT_UNITS = 1024            # bound of short text properties (names, categories, ...)
LONG_UNITS = 32_000           # bound of long text and JSON properties: 64,000 bytes in UTF-16

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_ESCAPE = "!"
_HEX = "0123456789abcdef"

_INT_FIELDS = ("run_id", "not_before", "created_at", "updated_at", "schema_version")
_SHORT_FIELDS = ("workspace", "job_name", "category", "action", "decided_by", "fingerprint", "mode",
                 "status", "lineage")
_LONG_FIELDS = ("reason", "excerpt")
_JSON_FIELDS = ("decision", "action_request", "action_result", "notification", "outcome", "feedback")


# --- keys ------------------------------------------------------------------------------

def _check_id(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (it holds a lone surrogate)") from None
    if utf16_len(value) > MAX_ID_UNITS:
        raise ValueError(f"{what} is longer than {MAX_ID_UNITS} characters")
    return value


def escape_key(key: str) -> str:
    """A Table Storage-safe key for ``key`` (same in both backends); see the module docstring."""
    _check_id(key, "key")
    out = []
    for ch in key:
        if ch in _SAFE:
            out.append(ch)
            continue
        cp = ord(ch)
        if cp <= 0xFF:
            out.append(f"{_ESCAPE}{cp:02x}")
        elif cp <= 0xFFFF:
            out.append(f"{_ESCAPE}u{cp:04x}")
        else:
            out.append(f"{_ESCAPE}U{cp:08x}")
    escaped = "".join(out)
    if len(escaped) <= MAX_KEY_CHARS:
        return escaped
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{escaped[:MAX_KEY_CHARS - 66]}{_ESCAPE}h{digest}"


_UNESCAPE = re.compile(r"!(?:U([0-9a-f]{8})|u([0-9a-f]{4})|([0-9a-f]{2}))")


def unescape_key(escaped: str) -> str:
    """The original key of an escaped key. ValueError for a shortened (digest) key."""
    if f"{_ESCAPE}h" in escaped:
        raise ValueError("a shortened key cannot be reversed; read the original from the row")

    def repl(m: re.Match[str]) -> str:
        return chr(int(m.group(1) or m.group(2) or m.group(3), 16))

    return _UNESCAPE.sub(repl, escaped)


def job_partition(job_id: str) -> str:
    """PartitionKey of a job's decisions (one-time runs without a job id share ``nojob``)."""
    return escape_key(str(job_id) if job_id not in (None, "") else NO_JOB)


# --- sizes ------------------------------------------------------------------------------

def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, which is what Table Storage counts (two bytes each)."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _clean(text: str) -> str:
    """Replace lone surrogates (which no UTF-8 or UTF-16 wire format accepts) by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def _cut(text: str, units: int) -> str:
    """The longest prefix of ``text`` of at most ``units`` UTF-16 units (never splits a pair)."""
    if utf16_len(text) <= units:
        return text
    total = 0
    for i, ch in enumerate(text):
        total += 2 if ord(ch) > 0xFFFF else 1
        if total > units:
            return text[:i]
    return text


def truncate_text(text: str, limit: int = LONG_UNITS) -> str:
    """``text`` bounded to ``limit`` UTF-16 units; a cut ends in ``…[truncated N chars]``."""
    text = _clean(str(text))
    if utf16_len(text) <= limit:
        return text
    worst = f"…[truncated {len(text)} chars]"
    kept = _cut(text, max(0, limit - len(worst)))
    return f"{kept}…[truncated {len(text) - len(kept)} chars]"


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _longest_string(obj: Any, best: list) -> None:
    """Find the longest string leaf: best = [length, container, key]."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        if isinstance(v, str):
            if len(v) > best[0]:
                best[:] = [len(v), obj, k]
        elif isinstance(v, (dict, list)):
            _longest_string(v, best)


def fit_json(obj: Any, limit: int = LONG_UNITS) -> str:
    """``obj`` as JSON of at most ``limit`` UTF-16 units. Too long: its longest strings are
    truncated (with the marker) until it fits, so the result is still valid JSON."""
    obj = json.loads(_dumps(obj if obj is not None else {}))   # a private, plain copy
    text = _dumps(obj)
    for _ in range(200):
        if utf16_len(_clean(text)) <= limit:
            return _clean(text)
        best: list = [0, None, None]
        _longest_string(obj, best)
        if best[0] < 64:
            break
        length, container, key = best
        container[key] = truncate_text(container[key], max(32, length // 2))
        text = _dumps(obj)
    # Too many small values to shrink: keep a visible prefix of the JSON text instead.
    budget = limit // 3
    while True:
        text = _dumps({"truncated_json": truncate_text(text, budget)})
        if utf16_len(text) <= limit:
            return text
        budget //= 2


def _loads(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {"unreadable_json": str(text)}
    return value if isinstance(value, dict) else {"value": value}


# --- decisions --------------------------------------------------------------------------

def record_to_props(record: DecisionRecord) -> dict[str, Any]:
    """The stored properties of a decision record (bounded; no PartitionKey/RowKey/etag)."""
    _check_id(record.decision_key, "decision_key")
    _check_id(str(record.job_id), "job_id")
    if record.status not in STATUSES:
        raise ValueError(f"status {record.status!r} is not one of {', '.join(STATUSES)}")
    d = record.to_dict()
    props: dict[str, Any] = {
        "decision_key": record.decision_key,
        "job_id": str(record.job_id),
        "confidence": float(d["confidence"]),
    }
    for name in _INT_FIELDS:
        props[name] = int(d[name])
    for name in _SHORT_FIELDS:
        props[name] = truncate_text(str(d[name]), SHORT_UNITS)
    for name in _LONG_FIELDS:
        props[name] = truncate_text(str(d[name]), LONG_UNITS)
    for name in _JSON_FIELDS:
        props[name] = fit_json(d[name], LONG_UNITS)
    return props


def props_to_record(props: Mapping[str, Any], etag: str | None) -> DecisionRecord:
    d = dict(props)
    for name in _JSON_FIELDS:
        d[name] = _loads(d.get(name))
    for name in _INT_FIELDS:
        if name in d:
            d[name] = int(d[name])
    if "confidence" in d:
        d["confidence"] = float(d["confidence"])
    return DecisionRecord.from_dict(d, etag=etag)


# --- state ------------------------------------------------------------------------------

def state_to_props(kind: str, key: str, value: Mapping[str, Any], expires_at: int, updated_at: int) -> dict[str, Any]:
    _check_id(kind, "state kind")
    _check_id(key, "state key")
    if not isinstance(value, Mapping):
        raise TypeError(f"a state value must be a mapping, not {type(value).__name__}")
    return {
        "kind": kind,
        "key": key,
        "value": fit_json(dict(value), LONG_UNITS),
        "expires_at": int(expires_at),
        "updated_at": int(updated_at),
    }


def prepare_record_update(record: DecisionRecord, now: int) -> tuple[DecisionRecord, str, str, dict[str, Any]]:
    """What both backends do before a conditional update: require the etag, stamp updated_at on
    a copy, build the properties and keys. Returns (copy, partition key, row key, properties)."""
    if not record.etag:
        raise ValueError("update needs the record's etag (from claim or get)")
    new = DecisionRecord.from_dict(record.to_dict(), etag=record.etag)
    new.updated_at = now
    return new, job_partition(new.job_id), escape_key(new.decision_key), record_to_props(new)


def prepare_state_write(kind: str, key: str, value: Mapping[str, Any], *, etag: str | None, if_absent: bool,
                        ttl_s: int | None, now: int) -> tuple[str, str, dict[str, Any]]:
    """What both backends do before a TriageState write: check the condition, compute the expiry,
    build the properties, escape the keys. Returns (partition key, row key, properties)."""
    if etag and if_absent:
        raise ValueError("state_put: use either etag or if_absent, not both")
    expires_at = now + int(ttl_s) * 1000 if ttl_s else 0
    props = state_to_props(kind, key, value, expires_at, now)
    return escape_key(kind), escape_key(key), props


def props_to_state(props: Mapping[str, Any], etag: str | None) -> StateEntry:
    return StateEntry(
        kind=str(props["kind"]),
        key=str(props["key"]),
        value=_loads(props.get("value")),
        etag=etag,
        expires_at=int(props.get("expires_at") or 0),
    )


# --- entity size (Table Storage's own formula) -------------------------------------------

def entity_bytes(partition_key: str, row_key: str, props: Mapping[str, Any]) -> int:
    """Size of an entity as Table Storage counts it: 4 + keys + per property 8 + name + value."""
    size = 4 + 2 * (utf16_len(partition_key) + utf16_len(row_key))
    for name, value in props.items():
        size += 8 + 2 * utf16_len(name)
        if isinstance(value, str):
            size += 4 + 2 * utf16_len(value)
        elif isinstance(value, bool):
            size += 1
        else:
            size += 8
    return size


def max_entity_bytes() -> int:
    """The largest decision entity ``record_to_props`` can produce (every field at its bound)."""
    big = "x" * (MAX_ID_UNITS)
    props: dict[str, Any] = {"decision_key": big, "job_id": big, "confidence": 0.0}
    props.update({n: 0 for n in _INT_FIELDS})
    props.update({n: "x" * SHORT_UNITS for n in _SHORT_FIELDS})
    props.update({n: "x" * LONG_UNITS for n in _LONG_FIELDS + _JSON_FIELDS})
    props["write_id"] = "x" * 32
    return entity_bytes("x" * MAX_KEY_CHARS, "x" * MAX_KEY_CHARS, props)
