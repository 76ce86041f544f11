"""The rules classifier: a pure function from a snapshot to a Classification.

For each failed task it gathers evidence (result state, termination code and type, then the
error text's error classes, SQLSTATEs, exception types and phrases), lets the most confident
rule decide, and records every match. For the run: tasks that failed only because an upstream
task failed do not decide; a deterministic failure outweighs a transient one.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from shared.models import (
    DETERMINISTIC,
    TRANSIENT,
    Category,
    Classification,
    Evidence,
    EvidenceKind,
    TaskVerdict,
)
from shared.redact import redact
from shared.decide.rootcause import extract
from shared.decide.rules import Rule, rules_of_kind
from shared.snapshot import RunState, Snapshot, TaskRun

__all__ = ["classify", "classify_text", "match_state", "match_text", "match_events", "UNKNOWN_CONFIDENCE"]

UNKNOWN_CONFIDENCE = 0.3
_FIRM = 0.85   # deterministic evidence this strong outweighs any transient match in the same task
# Generic codes that say "look at the text" rather than what happened.
_GENERIC_CODES = {"RUN_EXECUTION_ERROR", "SUCCESS", "CANCELED"}
_GENERIC_TYPES = {"CLIENT_ERROR", "SUCCESS"}
# Which verdict decides a multi-task run: deterministic first, then dependency, unknown,
# transient, canceled.
_PRECEDENCE = {**{c: 4 for c in DETERMINISTIC}, Category.DEPENDENCY: 3, Category.UNKNOWN: 2,
               **{c: 1 for c in TRANSIENT}, Category.CANCELED: 0}


def _ev(rule: Rule, matched: str, task_key: str | None) -> Evidence:
    return Evidence(rule_id=rule.id, kind=rule.kind, category=rule.category, confidence=rule.confidence,
                    matched=matched, task_key=task_key, retryable_hint=rule.retryable)


def match_state(state: RunState, task_key: str | None = None) -> list[Evidence]:
    """Evidence from structured state: result/life-cycle state, termination code and type."""
    out: list[Evidence] = []
    values = {
        EvidenceKind.RESULT_STATE: [v for v in (state.result_state,) if v and v != "FAILED"]
        + ([state.life_cycle_state] if state.life_cycle_state in ("SKIPPED", "INTERNAL_ERROR") else []),
        EvidenceKind.TERMINATION_CODE: [state.termination_code] if state.termination_code
        and state.termination_code not in _GENERIC_CODES else [],
        EvidenceKind.TERMINATION_TYPE: [state.termination_type] if state.termination_type
        and state.termination_type not in _GENERIC_TYPES else [],
    }
    # A run canceled by the platform for exceeding its time limit carries code CANCELED and
    # result TIMEDOUT: the result state rule covers it.
    for kind, vals in values.items():
        for v in vals:
            for rule in rules_of_kind(kind):
                if rule.matches_value(v):
                    out.append(_ev(rule, v, task_key))
    return out


def match_text(text: str, task_key: str | None = None) -> tuple[list[Evidence], str]:
    """Evidence from error text; returns (evidence, root-cause excerpt)."""
    rc = extract(text)
    out: list[Evidence] = []
    # Delta prefixes many Spark classes (DELTA_INSERT_COLUMN_ARITY_MISMATCH): try both spellings.
    classes = list(rc.error_classes) + [c[len("DELTA_"):] for c in rc.error_classes if c.startswith("DELTA_")]
    for kind, values in (
        (EvidenceKind.ERROR_CLASS, classes),
        (EvidenceKind.SQLSTATE, rc.sqlstates),
        (EvidenceKind.EXCEPTION, rc.exceptions),
    ):
        recognised: set[str] = set()
        for rule in rules_of_kind(kind):
            fallback = rule.id.endswith(".other")  # only for what no specific rule recognised
            for v in values:
                if fallback and v in recognised:
                    continue
                if rule.matches_value(v):
                    out.append(_ev(rule, v, task_key))
                    recognised.add(v)
                    if not fallback:
                        break
    for kind in (EvidenceKind.VETO, EvidenceKind.PHRASE):
        for rule in rules_of_kind(kind):
            m = rule.search(rc.text)
            if m:
                out.append(_ev(rule, " ".join(m.group(0).split())[:200], task_key))
    return out, rc.excerpt


# Cluster events count when they fall inside the task's run (with this much slack either side).
_EVENT_SLACK_MS = 15 * 60 * 1000


def match_events(events: Iterable[Mapping[str, Any]], task_key: str | None = None, *,
                 start_ms: int | None = None, end_ms: int | None = None) -> list[Evidence]:
    """Evidence from a cluster's events (a clusters/events answer): each event's type and its
    ``details.reason.code``, within the task's time window when it is known."""
    values: list[str] = []
    for e in events:
        if not isinstance(e, Mapping):
            continue
        ts = e.get("timestamp")
        if isinstance(ts, int) and not isinstance(ts, bool):
            if start_ms and ts < start_ms - _EVENT_SLACK_MS or end_ms and ts > end_ms + _EVENT_SLACK_MS:
                continue
        details = e.get("details") if isinstance(e.get("details"), Mapping) else {}
        reason = details.get("reason") if isinstance(details.get("reason"), Mapping) else {}
        for v in (e.get("type"), reason.get("code")):
            if isinstance(v, str) and v and v not in values:
                values.append(v)
    out: list[Evidence] = []
    for rule in rules_of_kind(EvidenceKind.CLUSTER_EVENT):
        for v in values:
            if rule.matches_value(v):
                out.append(_ev(rule, v, task_key))
                break
    return out


def _rank(e: Evidence) -> tuple[float, int]:
    return (e.confidence, e.kind.strength)


def _verdict(task_key: str | None, run_id: int | None, evidence: list[Evidence], excerpt: str,
             upstream_only: bool = False) -> TaskVerdict:
    if not evidence:
        return TaskVerdict(task_key, run_id, Category.UNKNOWN, UNKNOWN_CONFIDENCE, (), excerpt, upstream_only)
    ranked = sorted(evidence, key=_rank, reverse=True)
    # A deterministic failure outweighs a transient one inside a task too: strong evidence that
    # a person must act (a missing permission behind a cluster that would not start) wins over
    # the transient symptom it caused. A fixed condition in the cause chain (a VETO row: refused
    # credentials, TLS settings, a version that does not fit...) does so whatever its confidence.
    if ranked[0].category in TRANSIENT:
        firm = [e for e in ranked if e.kind is EvidenceKind.VETO] or \
            [e for e in ranked if e.category in DETERMINISTIC and e.confidence >= _FIRM]
        if firm:
            ranked.remove(firm[0])
            ranked.insert(0, firm[0])
    top = ranked[0]
    vetoed = top.kind is EvidenceKind.VETO   # the transient symptoms are explained, not rivals
    confidence = top.confidence
    same = {e.rule_id for e in ranked[1:] if e.category is top.category}
    if same:  # independent corroboration
        confidence = min(0.99, confidence + 0.02 * len(same))
    # Close evidence for the other side of the deterministic/transient line makes us less sure.
    top_det = top.category in DETERMINISTIC
    rivals = [e for e in ranked[1:] if e.category is not top.category
              and (e.category in DETERMINISTIC) != top_det
              and e.category in (DETERMINISTIC | TRANSIENT) and top.confidence - e.confidence < 0.08]
    if rivals and top.category in (DETERMINISTIC | TRANSIENT) and not vetoed:
        confidence = max(0.05, confidence - 0.15)
    return TaskVerdict(task_key, run_id, top.category, round(confidence, 3), tuple(ranked), excerpt, upstream_only)


def _classify_task(task: TaskRun, events: Iterable[Mapping[str, Any]] = ()) -> TaskVerdict:
    evidence = match_state(task.state, task.task_key)
    if events:
        start, end = task.raw.get("start_time"), task.raw.get("end_time")
        evidence.extend(match_events(events, task.task_key, start_ms=start if isinstance(start, int) else None,
                                     end_ms=end if isinstance(end, int) else None))
    text_ev, excerpt = match_text(task.text, task.task_key)
    evidence.extend(text_ev)
    if not excerpt:
        excerpt = redact("\n".join(task.state.messages))[:2000]   # redacted before the cut halves a secret
    return _verdict(task.task_key, task.run_id, evidence, excerpt)


def _dependency_retryable(evidence: Iterable[Evidence]) -> bool | None:
    """DEPENDENCY failures are retryable only when the package source was unreachable and
    nothing says the package itself is wrong."""
    ev = list(evidence)
    if any(e.category is Category.DEPENDENCY and e.retryable_hint is False for e in ev):
        return False
    if any(e.retryable_hint is True for e in ev) or any(
        e.category in (Category.NETWORK, Category.TIMEOUT) for e in ev
    ):
        return True
    return None


def classify(snapshot: Snapshot) -> Classification:
    run_state = snapshot.state
    failed = snapshot.failed_tasks
    deciding = [t for t in failed if not t.state.upstream]
    verdicts = [_classify_task(t, (snapshot.cluster_events.get(t.cluster_id) or {}).get("events") or ())
                for t in deciding]
    upstream = [
        TaskVerdict(t.task_key, t.run_id, Category.CANCELED, 0.0, (), "", upstream_only=True)
        for t in failed if t.state.upstream
    ]

    # Run-level structured evidence (a timed-out or canceled run, a run that never started).
    run_ev = match_state(run_state, None)
    is_task_list = bool(snapshot.run.get("tasks"))
    if run_ev and is_task_list:
        run_text_ev, run_excerpt = match_text("\n".join(run_state.messages), None)
        run_verdict = _verdict(None, snapshot.run_id, run_ev + run_text_ev, run_excerpt)
        # The run's own state decides when it is a time-out or a cancellation, or when no task
        # carries better evidence.
        if run_verdict.category in (Category.TIMEOUT, Category.CANCELED) or not verdicts or all(
            v.category is Category.UNKNOWN for v in verdicts
        ):
            verdicts.insert(0, run_verdict)

    if not verdicts and run_state.messages:
        ev, excerpt = match_text("\n".join(run_state.messages), None)
        verdicts.append(_verdict(None, snapshot.run_id, ev, excerpt))
    if not verdicts:
        verdicts.append(_verdict(None, snapshot.run_id, [], ""))

    # A timed-out or user-canceled run: that is what happened, whatever the tasks say.
    structural = [v for v in verdicts if v.task_key is None and v.top is not None
                  and v.top.kind is EvidenceKind.RESULT_STATE
                  and v.category in (Category.TIMEOUT, Category.CANCELED)]
    if structural:
        chosen = structural[0]
        note = ""
    else:
        chosen = max(verdicts, key=lambda v: (_PRECEDENCE[v.category], v.confidence))
        others = [v for v in verdicts if v is not chosen and v.category is not chosen.category]
        note = ""
        if others and chosen.category in DETERMINISTIC and any(o.category in TRANSIENT for o in others):
            note = (f"deterministic {chosen.category.value} in task {chosen.task_key} outweighs "
                    + ", ".join(f"{o.category.value} in {o.task_key}" for o in others))

    evidence = chosen.evidence
    if chosen.category is Category.DEPENDENCY:
        hint = _dependency_retryable(evidence)
        if hint is not None and evidence:
            top = evidence[0]
            evidence = (Evidence(top.rule_id, top.kind, top.category, top.confidence, top.matched,
                                 top.task_key, hint), *evidence[1:])
    return Classification(
        category=chosen.category,
        confidence=chosen.confidence,
        evidence=evidence,
        excerpt=chosen.excerpt,
        deciding_task=chosen.task_key,
        tasks=tuple(verdicts) + tuple(upstream),
        note=note,
    )


def classify_text(text: str) -> TaskVerdict:
    """Classify bare error text (used by tests and the LLM cache warm-up)."""
    ev, excerpt = match_text(text)
    return _verdict(None, None, ev, excerpt)
