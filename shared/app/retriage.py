"""Re-triage: a failure whose triage kept failing for a passing reason is placed once Databricks
answers again.

The queue retries a triage request (host.json ``maxDequeueCount``), then poisons it, and
``shared.app.worker.process_poison`` escalates "triage failed for run X" (the record
``<run>-triage-failed``: a person is paged). The sweep skips a run with that record, so without
more a ``get-output`` outage of ten minutes would leave the failure never placed. The poison
path's record therefore carries a schedule (``action_result["retriage"]``, ``schedule()``) and
every sweep (``retriage_due``) triages the run again once it is due: 15 min after the
escalation, then 1 h, 6 h, 24 h, then daily, until a week after it (the sweep's look-back,
``shared.triage.UNFINISHED_LOOKBACK_S``, less an hour so the last try is still seen).

One try, under the record's etag (two sweeps at once: one tries, the other sees it taken):

- the next try is written first (``attempts``, ``next_at``), so a sweep that dies mid-try leaves
  it scheduled, not lost;
- a passing failure again (Databricks or the store unavailable, an answer not understood): the
  error is noted, the next try stands;
- the run is running again (repaired or rerun by hand): tried again later; its new attempt is
  decided when it ends (Databricks is the source of truth);
- the run is placed: its real decision ``<run>-<attempt>`` exists (the store's claim keeps it to
  one), and the escalation notes which decision placed it and when (``placed_by``, ``placed_at``),
  so ``decisions show`` and ``report`` tell the story. The run ended well meanwhile (a person
  repaired it): ``settled``, nothing to place;
- refused for good (the run is gone, the token refused, a setting missing), or out of time:
  ``given_up``, noted; the escalation a person has stands.

A person was paged about the run and may have rerun it by hand, so a placed decision that would
send a rerun does not send on its own: it becomes an approval request (``ask_first``, the
mechanism of docs/trust.md) whose reason says triage had failed and a person was paged. An
email, an escalation or IGNORE proceeds as usual, so the person learns the real cause.

Escalations without a schedule are left alone: those the worker made at once (the run not found,
the token refused: retrying cannot help) and those written before the schedule existed (they
cannot tell a passing failure from a permanent one, a person has had them for hours or days,
and the job has likely run again since, so a late decision about that old attempt would be noise).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from shared.errors import ConfigError, DatabricksError, DatabricksUnavailable, SecretError, StoreError
from shared.snapshot import as_int

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings
    from shared.databricks.client import DatabricksClient
    from shared.models import Decision
    from shared.notify.notifier import Notifier
    from shared.store import DecisionRecord, Store

__all__ = ["RETRIAGE_DELAYS_S", "schedule", "retriage_state", "awaiting", "holds_run", "ask_first", "retriage_due"]

log = logging.getLogger(__name__)

RETRIAGE_DELAYS_S = (15 * 60, 3600, 6 * 3600, 86400)   # before try 1, 2, 3, 4; then daily
_EDGE_S = 3600                                          # the last try an hour inside the sweep's look-back
_PASSING = (DatabricksUnavailable, StoreError, SecretError)


def _lookback_s() -> int:
    from shared.triage import UNFINISHED_LOOKBACK_S

    return UNFINISHED_LOOKBACK_S


def _delay_s(tries_done: int) -> int:
    return RETRIAGE_DELAYS_S[min(max(0, tries_done), len(RETRIAGE_DELAYS_S) - 1)]


def schedule(now: int) -> dict[str, Any]:
    """The ``action_result`` of a poison escalation: the first re-triage 15 minutes from ``now``."""
    until = now + (_lookback_s() - _EDGE_S) * 1000
    return {"retriage": {"state": "waiting", "attempts": 0, "next_at": now + _delay_s(0) * 1000, "until": until}}


def retriage_state(rec: "DecisionRecord") -> dict[str, Any]:
    """The schedule of a ``-triage-failed`` record ({} when it has none)."""
    if not rec.decision_key.endswith("-triage-failed"):
        return {}
    result = rec.action_result if isinstance(rec.action_result, dict) else {}
    state = result.get("retriage")
    return dict(state) if isinstance(state, dict) else {}


def awaiting(rec: "DecisionRecord") -> bool:
    """A poison escalation whose run is still to be placed by a later sweep (counted by ``health``)."""
    from shared.app.lifecycle import awaiting_retriage

    return awaiting_retriage(rec)


def holds_run(rec: "DecisionRecord") -> bool:
    """Whether this ``-triage-failed`` record keeps the sweep's discovery off the run: yes until
    a re-triage placed it (then the run's attempts are decided as any other's)."""
    return retriage_state(rec).get("state") not in ("placed", "settled")


def ask_first(escalation: "DecisionRecord") -> Callable[["Decision"], "Decision"]:
    """The review a re-triage passes to the pipeline: a rerun becomes an approval request."""
    def review(decision: "Decision") -> "Decision":
        from shared.decide.policy import ask_approval
        from shared.models import Action, Category

        if not decision.action.is_retry:
            return decision
        instead = Action.ESCALATE if decision.category is Category.UNKNOWN else Action.SEND_EMAIL
        return ask_approval(decision, instead, f"triage of this run had failed and a person was paged "
                            f"({escalation.decision_key}); they may have rerun it by hand, so it is not rerun "
                            "automatically")
    return review


def _note(rec: "DecisionRecord", **changes: Any) -> "DecisionRecord":
    state = {**retriage_state(rec), **changes}
    rec.action_result = {**(rec.action_result if isinstance(rec.action_result, dict) else {}), "retriage": state}
    return rec


def _write(store: "Store", rec: "DecisionRecord", **changes: Any) -> "DecisionRecord | None":
    """Note ``changes`` on the schedule under the record's etag; None when another writer won."""
    upd = store.update(_note(rec, **changes))
    return upd.record if upd.ok else None


def _describe(exc: BaseException) -> str:
    from shared.redact import redact

    return redact(f"{type(exc).__name__}: {exc}")[:500]


def retriage_one(rec: "DecisionRecord", settings: "Settings", *, client: "DatabricksClient", store: "Store",
                 notifier: "Notifier | None", now: int) -> "DecisionRecord | None":
    """One due try (see the module doc). Returns the real decision when the run was placed."""
    from shared.databricks.capture import capture_snapshot
    from shared.triage import triage_snapshot

    state = retriage_state(rec)
    tries = (as_int(state.get("attempts")) or 0) + 1
    until = as_int(state.get("until")) or int(rec.created_at or now) + (_lookback_s() - _EDGE_S) * 1000
    if now >= until:
        _write(store, rec, state="given_up", at=now,
               note=f"not placed after {tries - 1} re-triage(s) over a week; the escalation stands")
        return None
    # Take the try first (the etag makes it one sweep's), so a sweep that dies here leaves it scheduled.
    taken = _write(store, rec, attempts=tries, tried_at=now, next_at=min(now + _delay_s(tries) * 1000, until))
    if taken is None:
        return None
    try:
        snapshot = capture_snapshot(client, taken.run_id, workspace_host=taken.workspace or getattr(client, "host", ""),
                                    store=None, max_outputs=settings.max_task_outputs)
        result = triage_snapshot(snapshot, settings, client=client, store=store, notifier=notifier,
                                 workspace=taken.workspace, review=ask_first(taken))
    except (DatabricksError, ConfigError) as exc:
        if isinstance(exc, _PASSING):
            _write(store, taken, last_error=_describe(exc))
        else:
            _write(store, taken, state="given_up", at=now, last_error=_describe(exc),
                   note="refused for good; the escalation stands")
        log.warning("re-triage of run %s (try %d): %s", taken.run_id, tries, _describe(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a passing store failure or an answer not understood: try later
        _write(store, taken, last_error=_describe(exc))
        log.warning("re-triage of run %s (try %d) failed: %s", taken.run_id, tries, _describe(exc))
        return None
    if result.record is not None:
        _write(store, taken, state="placed", placed_by=result.record.decision_key, placed_at=now, last_error="")
        log.info("run %s placed by its re-triage as %s (%s)", taken.run_id, result.record.decision_key,
                 result.record.action)
        return result.record
    if snapshot.state.terminal and not snapshot.state.failed and not snapshot.repair_in_flight:
        _write(store, taken, state="settled", at=now, note=result.message, last_error="")
    else:                                   # running again: its attempt is decided when it ends
        _write(store, taken, note=result.message, last_error="")
    return None


def retriage_due(settings: "Settings", *, client: "DatabricksClient", store: "Store",
                 notifier: "Notifier | None" = None, now: int | None = None) -> list["DecisionRecord"]:
    """Every sweep: try again each poison escalation whose re-triage is due. Returns the
    decisions that placed their run."""
    from shared.store import now_ms

    now = now or now_ms()
    placed: list[DecisionRecord] = []
    for rec in store.list(since_ms=now - _lookback_s() * 1000):
        state = retriage_state(rec)
        if state.get("state") != "waiting" or (as_int(state.get("next_at")) or 0) > now:
            continue
        try:
            done = retriage_one(rec, settings, client=client, store=store, notifier=notifier, now=now)
        except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the others
            log.warning("re-triage of %s could not be noted: %s", rec.decision_key, exc)
            continue
        if done is not None:
            placed.append(done)
    return placed
