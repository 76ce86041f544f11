"""Spend counters: what the app spent per UTC day on the workspaces' behalf, shared by every
instance through the store (``TriageState`` kind ``spend``, kept three days).

Keys: ``<day>`` (everything: reruns and the model), ``<day>:job:<job_id>`` (one job's reruns and
model calls), ``<day>:model`` (the model alone). Amounts are kept in micro-dollars and added with
the store's conditional counter (``Store.incr``: read, then write under the etag, again on a
conflict), so two instances adding at once both count, once each. The pipeline adds a rerun's
estimate once, after the conditional ``decided -> acting`` write that only one worker wins; a
model call is added once, after the call. The arithmetic is in ``shared.decide.budget``.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from shared.store.base import Store

__all__ = ["SPEND_KIND", "day_of", "spent", "add_spend", "today"]

log = logging.getLogger(__name__)

SPEND_KIND = "spend"
_KEEP_S = 3 * 86400


def day_of(ms: int | None = None) -> str:
    """The UTC day (YYYY-MM-DD) of an epoch-ms time (default: now)."""
    seconds = (ms if ms is not None else int(time.time() * 1000)) / 1000
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d")


def _key(day: str, job_id: str | None = None, model: bool = False) -> str:
    if model:
        return f"{day}:model"
    if job_id:
        return f"{day}:job:{job_id}"
    return day


def spent(store: "Store", *, day: str, job_id: str | None = None, model: bool = False) -> float:
    """US dollars counted for the day (the app's total, one job's, or the model's)."""
    entry = store.state_get(SPEND_KIND, _key(day, job_id, model))
    return int(entry.value.get("count", 0)) / 1_000_000 if entry else 0.0


def add_spend(store: "Store", usd: float, *, day: str, job_id: str | None = None, model: bool = False) -> None:
    """Add ``usd`` to the day's total, the job's (when given) and the model's (a model call)."""
    micro = int(round(max(0.0, float(usd)) * 1_000_000))
    if micro <= 0:
        return
    store.incr(SPEND_KIND, _key(day), micro, ttl_s=_KEEP_S)
    if job_id and job_id != "nojob":
        store.incr(SPEND_KIND, _key(day, job_id), micro, ttl_s=_KEEP_S)
    if model:
        store.incr(SPEND_KIND, _key(day, model=True), micro, ttl_s=_KEEP_S)


def today(store: "Store", now_ms: int | None = None) -> dict[str, float]:
    """{"day", "total_usd", "model_usd"} for the current UTC day."""
    day = day_of(now_ms)
    return {"day": day, "total_usd": round(spent(store, day=day), 4),  # type: ignore[dict-item]
            "model_usd": round(spent(store, day=day, model=True), 4)}
