"""The triage pipeline — start here to find where any decision is made.

    snapshot ─► classify (shared.decide.classify, rules in shared.decide.rules)
             ─► decide (shared.decide.policy.decide)
             ─► [LLM when the rules are unsure: shared.llm.consult]
             ─► enforce the safety invariants (shared.decide.policy.enforce)
             ─► [a retry on less than firm evidence: the model may veto it, shared.llm.veto]
             ─► claim the decision key (shared.store) ─► act (shared.databricks.actions) ─► record

``decide`` is the offline part (no network unless an LLM is configured and allowed).
``triage_snapshot`` decides only about a finished, failed attempt: a run that is running again,
or whose latest repair has not ended, is skipped (that attempt gets its own decision when it ends).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.decide.classify import classify
from shared.config import Settings
from shared.models import Decision
from shared.decide.policy import decide as rules_decide
from shared.decide.policy import enforce
from shared.snapshot import Snapshot
from shared.store import DecisionRecord, now_ms

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from shared.databricks.client import DatabricksClient
    from shared.llm.backends import LLMBackend
    from shared.notify.notifier import Notifier
    from shared.store.base import Store

__all__ = ["decide", "TriageResult", "triage_run", "triage_snapshot", "read_cluster_events", "act_due",
           "report_triage_failure", "new_record", "retry_notifications", "decision_of_record", "resume_action",
           "notification_decision"]

log = logging.getLogger(__name__)


def _redact(text: str) -> str:
    from shared.redact import redact

    return redact(text)


def _fingerprint(decision: Decision) -> str:
    from shared.decide.fingerprint import fingerprint

    return fingerprint(decision.excerpt, category=decision.category.value)


def decide(
    snapshot: Snapshot,
    settings: Settings,
    *,
    store: Store | None = None,
    llm: LLMBackend | None = None,
    use_llm: bool = True,
    prior_retries: int | None = None,
) -> Decision:
    """Classify a failure and decide what to do, within the policy's invariants.

    ``store`` (optional) supplies the LLM cache and budget, the fingerprint's retry record and
    the lineage's previous attempt (a retry of ours that failed the same way is not repeated);
    ``llm`` (optional) is an LLM backend; without one, the model is used only when configured
    in ``settings`` and ``use_llm`` is true.
    """
    classification = classify(snapshot)
    decision = rules_decide(snapshot, classification, settings)
    decision.excerpt = _redact(decision.excerpt)
    decision.fingerprint = _fingerprint(decision)

    # A person's correction of this failure in this job (or workspace) decides it: no model asked.
    from shared.learning.precedents import precedent_decision
    precedent = precedent_decision(store, snapshot, decision) if store is not None else None
    if precedent is not None:
        decision = precedent
    elif use_llm and (llm is not None or settings.llm_configured):
        from shared import llm as llm_mod

        history: list = []
        corrections: list = []
        if store is not None and llm_mod.should_consult(classification, settings):
            history, corrections = _learning_context(store, snapshot, decision)
        decision = llm_mod.consult(snapshot, classification, decision, settings, store=store, backend=llm,
                                   history=history, corrections=corrections)

    failed_retries = model_retries = 0
    retried = None
    if store is not None and decision.fingerprint:
        failed_retries = _failed_retries(store, snapshot, decision.fingerprint)
    if store is not None and decision.action.is_retry:   # only a retry can repeat a wasted one
        from shared.learning.lineage import model_only_retries, previous_retry
        from shared.databricks.capture import lineage_of

        retried = previous_retry(store, snapshot, lineage_of(snapshot.run))
        model_retries = model_only_retries(store, lineage_of(snapshot.run) or str(snapshot.run_id))
    decision = enforce(
        decision,
        snapshot,
        classification,
        settings,
        prior_retries=prior_retries,
        failed_retries_of_fingerprint=failed_retries,
        retried=retried,
        model_only_retries=model_retries,
    )
    if decision.action.is_retry and use_llm and (llm is not None or settings.llm_configured):
        # A retry resting on less than firm evidence gets the model's second opinion: veto only.
        from shared.llm.veto import second_opinion

        decision = second_opinion(snapshot, classification, decision, settings, store=store, backend=llm)
    return _with_evidence_notes(decision, snapshot)


def _with_evidence_notes(decision: Decision, snapshot: Snapshot) -> Decision:
    """Say on the decision what evidence it was made without: fields of the Databricks answers
    that had the wrong shape, task outputs not read (the fan-out bound) or gone for good."""
    import dataclasses

    history = snapshot.history or {}
    notes: list[str] = []
    read = [str(n) for n in (history.get("read_notes") or [])]
    if read:
        notes.append(f"odd answer from Databricks: {len(read)} field(s) ignored ({'; '.join(read[:3])}"
                     f"{'; ...' if len(read) > 3 else ''})")
    skipped = history.get("outputs_skipped")
    if isinstance(skipped, dict) and skipped.get("count"):
        notes.append(f"{skipped['count']} more failed task(s) not read (at most {skipped.get('limit')} task outputs "
                     f"per run, the earliest failures first): {', '.join(map(str, skipped.get('tasks') or []))[:300]}")
    for err in history.get("capture_errors") or []:
        if isinstance(err, dict) and err.get("call") == "runs/get-output" and err.get("status") == 404:
            notes.append(f"the output of task {err.get('task_key') or err.get('run_id')} is gone for good (deleted, "
                         "or older than Databricks keeps runs): decided without its error text")
        elif isinstance(err, dict) and err.get("call") == "runs/get-output":
            notes.append(f"the output of task {err.get('task_key') or err.get('run_id')} could not be read "
                         f"({err.get('error_code') or err.get('status') or err.get('message')}): decided without it")
    if not notes:
        return decision
    return dataclasses.replace(decision, notes=[*decision.notes, *[_redact(n) for n in notes]])


def _learning_context(store: Store, snapshot: Snapshot, decision: Decision) -> tuple[list, list]:
    """This job's recent decisions and the human corrections most like this failure, for the
    prompt. Advisory: a store hiccup here never blocks a decision."""
    try:
        history = store.list(job_id=str(snapshot.job_id or "nojob"), limit=5)
        from shared.learning.feedback import corrections_for

        corrections = corrections_for(store, decision)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not read the learning context for run %s: %s", snapshot.run_id, exc)
        return [], []
    return history, corrections


def _failed_retries(store: Store, snapshot: Snapshot, fingerprint: str) -> int:
    """How many automatic retries of this job's failure fingerprint failed again recently
    (counted by shared.learning.outcomes when the sweep sees a retry fail)."""
    from shared.learning.outcomes import hopeless_key

    try:
        entry = store.state_get("hopeless", hopeless_key(snapshot.job_id, fingerprint))
    except Exception as exc:  # noqa: BLE001 - learning is advisory; never block a decision on it
        log.warning("could not read the retry record of fingerprint %s: %s", fingerprint, exc)
        return 0
    return int(entry.value.get("count", 0)) if entry else 0


# --------------------------------------------------------------------------------------------
# The pipeline: capture -> decide -> claim -> act -> record. Exactly once per decision key.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriageResult:
    record: DecisionRecord | None  # None when there was nothing to decide (see ``skipped``)
    duplicate: bool = False     # another delivery already decided this failure: nothing was done
    acted: bool = False         # this call carried an action out
    message: str = ""
    skipped: bool = False       # the run is not a finished failure (running again, or it succeeded)


def new_record(snapshot: Snapshot, decision: Decision, settings: Settings, *, workspace: str = "",
               mode: str | None = None) -> DecisionRecord:
    from shared.databricks.capture import lineage_of
    from shared.learning.outcomes import failure_times

    kept = _redact_obj(decision.to_dict())
    kept["run_times"] = failure_times(snapshot.run)   # lets outcome checks read runs/list, not the run
    return DecisionRecord(
        decision_key=snapshot.decision_key,
        job_id=str(snapshot.job_id or "nojob"),
        run_id=snapshot.run_id,
        workspace=workspace or snapshot.workspace_host,
        job_name=_redact(snapshot.job_name),
        category=decision.category.value,
        action=decision.action.value,
        confidence=round(float(decision.confidence), 3),
        decided_by=decision.decided_by,
        reason=_redact(decision.reason),
        fingerprint=decision.fingerprint,
        excerpt=decision.excerpt,
        mode=_mode_for(snapshot, settings, mode),
        status="decided",
        lineage=lineage_of(snapshot.run),
        decision=kept,
    )


def _redact_obj(obj: Any) -> Any:
    from shared.redact import redact_obj

    return redact_obj(obj)


# Job inputs a task definition carries. The request sent to Databricks keeps them (the rerun
# needs them); the copy kept on the decision does not: a secret under a neutral name ("conn")
# cannot be recognised, so their values are not stored at all.
_INPUT_FIELDS = frozenset({"base_parameters", "parameters", "named_parameters", "python_params", "jar_params",
                           "notebook_params", "python_named_params", "sql_params", "job_parameters",
                           "spark_env_vars", "env_vars", "environment_variables", "spark_submit_params"})


def _stored_request(obj: Any) -> Any:
    """The plan as it is stored: redacted, with job input values replaced by a marker."""
    def mask(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: (_mask_inputs(v) if k in _INPUT_FIELDS else mask(v)) for k, v in o.items()}
        if isinstance(o, list):
            return [mask(v) for v in o]
        return o
    return _redact_obj(mask(obj))


stored_request = _stored_request   # public name: shared.app.approvals stores what approving sends


def _mask_inputs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[not stored]" for k in value}
    if isinstance(value, list):
        return ["[not stored]" for _ in value]
    return "[not stored]"


def _mode_for(snapshot: Snapshot, settings: Settings, mode: str | None) -> str:
    """The command line's --mode, else the job tag triage.mode, else TRIAGE_MODE. A job tag may
    only make a job *more* careful than the app (shadow), never switch an app in shadow to act."""
    if mode in ("shadow", "act"):
        return mode
    tag = snapshot.tags.get("triage.mode", "").strip().lower()
    if tag == "shadow":
        return "shadow"
    return settings.mode


def triage_run(run_id: int, settings: Settings, *, client: DatabricksClient, store: Store, notifier: Notifier | None = None,
               mode: str | None = None, workspace: str = "", use_llm: bool = True,
               act_now: bool = False, llm: LLMBackend | None = None) -> TriageResult:
    """Triage one failed run of the workspace behind ``client``: the queue worker's and the
    ``triage`` command's entry point."""
    from shared.databricks.capture import capture_snapshot

    # The lineage's retry count is read once, by triage_snapshot (not here as well).
    snapshot = capture_snapshot(client, run_id, workspace_host=workspace or getattr(client, "host", ""), store=None,
                                max_outputs=settings.max_task_outputs)
    return triage_snapshot(snapshot, settings, client=client, store=store, notifier=notifier, mode=mode,
                           workspace=workspace, use_llm=use_llm, act_now=act_now, llm=llm)


def read_cluster_events(snapshot: Snapshot, settings: Settings, *, client: DatabricksClient | None) -> Snapshot:
    """The failed tasks' cluster events, when they can change the decision (shared.databricks.events)."""
    from shared.databricks.events import clusters_to_read, with_cluster_events

    if client is None or not snapshot.state.terminal or not snapshot.state.failed:
        return snapshot
    return with_cluster_events(client, snapshot, clusters_to_read(snapshot, classify(snapshot), settings))


def triage_snapshot(snapshot: Snapshot, settings: Settings, *, client: DatabricksClient, store: Store, notifier: Notifier | None = None,
                    mode: str | None = None, workspace: str = "", use_llm: bool = True,
                    act_now: bool = False, llm: LLMBackend | None = None,
                    review: Callable[[Decision], Decision] | None = None) -> TriageResult:
    """``review`` (optional): the decision -> a more cautious one (a re-triage: shared.app.retriage)."""
    from shared.databricks.actions import effective_decision
    from shared.databricks.budget import say_budget

    state = snapshot.state
    if snapshot.repair_in_flight:
        return TriageResult(None, skipped=True,
                            message=f"run {snapshot.run_id} has a repair in progress: nothing to triage until it ends")
    if not state.terminal or not state.failed:
        # Running again (someone repaired it: that attempt gets its own decision when it ends),
        # or it did not fail. Deciding now would act on an attempt that has not failed.
        what = "running" if not state.terminal else (state.result_state or state.life_cycle_state or "not failed")
        return TriageResult(None, skipped=True, message=f"run {snapshot.run_id} is {what}: nothing to triage")
    job_id = str(snapshot.job_id or "nojob")
    existing = store.get(snapshot.decision_key, job_id)
    if existing is not None:  # cheap early exit for duplicate deliveries (the claim below is the guard)
        return TriageResult(existing, duplicate=True, message=f"already decided as {existing.decision_key}")
    snapshot = read_cluster_events(snapshot, settings, client=client)

    from shared.databricks.capture import lineage_of

    lineage_retries = store.retries(lineage_of(snapshot.run))
    if lineage_retries != int(snapshot.history.get("prior_retries") or 0):
        from dataclasses import replace

        snapshot = replace(snapshot, history={**snapshot.history, "prior_retries": lineage_retries})
    decision = decide(snapshot, settings, store=store, llm=llm, use_llm=use_llm, prior_retries=lineage_retries)
    decision = review(decision) if review is not None else decision
    plan, cost = _plan(snapshot, decision, settings, store, now_ms())
    decision = effective_decision(decision, plan)  # e.g. a resize that cannot be done becomes an email
    decision = say_budget(decision, cost)
    record = new_record(snapshot, decision, settings, workspace=workspace, mode=mode)
    if cost:
        record.decision["cost"] = cost
    record.action_request = _stored_request(plan.to_dict())
    record.not_before = int(getattr(plan, "not_before", 0) or 0)
    if decision.approval == "pending" and decision.proposed_action:   # what approving would send (docs/trust.md)
        from shared.databricks.actions import plan_action
        proposed = plan_action(snapshot, decision.as_proposed(), settings, now_ms=now_ms())
        record.decision["proposed_request"] = _stored_request(proposed.to_dict())

    claim = store.claim(record)
    if not claim.won:
        log.info("decision %s already claimed by another delivery", record.decision_key)
        return TriageResult(claim.record, duplicate=True, message=f"already decided as {record.decision_key}")
    record = claim.record
    if decision.precedent:
        from shared.learning.precedents import note_fired
        note_fired(store, decision.precedent, record.decision_key)

    if record.mode != "act":
        return TriageResult(record, message="shadow mode: decision recorded, nothing sent")
    if record.not_before > now_ms() and not act_now:
        return TriageResult(record, message=f"waiting for back-off until {record.not_before} (the sweep acts then)")
    return _act(record, snapshot, decision, plan, settings, client=client, store=store, notifier=notifier)


_DEFINITION_PARTS = ("run.tasks", "run.job_clusters", "run.cluster_spec", "run.git_source", "run.environments",
                     "job.settings")


def _plan(snapshot: Snapshot, decision: Decision, settings: Settings, store: Store, now: int) -> tuple[Any, dict]:
    """The one place an action is planned (at decision time, and again when a back-off ends): the
    request(s), then the budget (``shared.databricks.budget``: a rerun past a daily cap becomes an
    email). Returns (plan, cost) where cost is what the decision records."""
    from shared.databricks.actions import plan_action
    from shared.databricks.budget import within_budget

    plan = _no_rerun_from_partial_definition(plan_action(snapshot, decision, settings, now_ms=now), snapshot)
    return within_budget(plan, snapshot, settings, store, now)


def _no_rerun_from_partial_definition(plan: Any, snapshot: Snapshot) -> Any:
    """A one-time rerun copies the job's task and cluster definitions. When a part of them had
    the wrong shape and was dropped, the copy would not be the job's own: tell the owner instead."""
    import dataclasses

    from shared.models import Action

    dropped = [str(n) for n in (snapshot.history or {}).get("read_notes") or []
               if str(n).startswith(_DEFINITION_PARTS)]
    if plan.kind != "submit" or not dropped:
        return plan
    return dataclasses.replace(
        plan, action=Action.SEND_EMAIL, kind="notify", notify="owner", requests=(),
        fallback_reason="part of the job's definition could not be read from Databricks "
                        f"({'; '.join(dropped[:2])}), so a rerun would not be the job's own",
        recommendation="Rerun the failed task(s) on a bigger cluster from the job itself.")


def _act(record: DecisionRecord, snapshot: Snapshot, decision: Decision, plan: Any, settings: Settings, *,
         client: DatabricksClient, store: Store, notifier: Notifier) -> TriageResult:
    """decided | retrying | (stale) acting -> acting (under etag, so one actor) -> acted |
    retrying | escalated (docs/lifecycle.md). The acting write records the attempt number first,
    so a worker that dies mid-action leaves a record the sweep can reconcile."""
    from shared.databricks.actions import execute
    from shared.databricks.budget import spend_rerun
    from shared.errors import ResizeRefused, TriageError

    prev = dict(record.action_result or {}) if record.status in ("retrying", "acting") else {}
    attempt = int(prev.get("attempts") or 0) + 1
    final_action = plan.action.value
    sends = final_action in ("RETRY", "RETRY_WITH_NEW_PARAMS")
    if sends and not prev.get("retry_counted"):
        store.add_retry(record.lineage or str(record.run_id))   # before the action: over- not under-counted
        if (record.decision or {}).get("model_only"):   # policy invariant 4: counted per lineage
            store.incr("model-retries", record.lineage or str(record.run_id))
    record.status = "acting"
    record.action_result = {**{k: v for k, v in prev.items() if k in ("errors", "first_error_at")},
                            "attempts": attempt, "acting_since": now_ms(), "retry_counted": sends}
    upd = store.update(record)
    if not upd.ok:
        return TriageResult(upd.record or record, duplicate=True, message="another worker is acting on this decision")
    record = upd.record
    try:
        if sends:
            record.action_result = {**record.action_result, **_redact_obj(execute(plan, client, store=store))}
            spend_rerun(record, store)
        elif final_action in ("SEND_EMAIL", "ESCALATE"):
            result = (notifier.notify(snapshot, decision, record) if notifier is not None
                      else {"status": "not configured"})
            record.notification = _redact_obj(dict(result))
            record.action_result = {**record.action_result, "notification": record.notification.get("status", "")}
        else:
            record.action_result = {**record.action_result, "status": "nothing to do"}
        record.status = "failed" if record.notification.get("status") == "failed" else "acted"
    except ResizeRefused as exc:   # e.g. not as the job's identity: the owner gets the recommendation instead
        _owner_instead(record, snapshot, decision, plan, exc, notifier)
    except TriageError as exc:
        from shared.app.lifecycle import action_failed

        action_failed(record, snapshot, decision, exc, settings, notifier)
    record.updated_at = now_ms()
    upd = store.update(record)
    record = upd.record if upd.ok else record
    return TriageResult(record, acted=record.status == "acted",
                        message=f"{final_action}: {record.status}")


carry_out = _act   # public name: an approved proposal goes through the same lifecycle (shared.app.approvals)


NOTIFY_ATTEMPTS = 5            # sends of a notification before it goes to the escalation route
UNDELIVERED_RESEND_S = 3600    # then an undelivered notification is tried again hourly


def notification_decision(rec: DecisionRecord) -> Decision:
    """The decision a (re)sent notification is about: an escalated action, or a notification
    whose own channel gave up, escalates (TRIAGE_ESCALATE_VIA / EMAIL_ESCALATION_TO)."""
    from dataclasses import replace

    from shared.models import Action

    d = decision_of_record(rec)
    result = rec.action_result or {}
    why = [str(w) for w in (result.get("escalated"), result.get("notify_escalated")) if w]
    return replace(d, action=Action.ESCALATE, notes=[*d.notes, *why]) if why else d


def _owner_instead(record: DecisionRecord, snapshot: Snapshot, decision: Decision, plan: Any, exc: Exception,
                   notifier: Notifier | None) -> None:
    """The resized rerun cannot be sent as planned (the workspace refused the job's identity, the
    job changed since the failure ...): tell the owner what to change."""
    from dataclasses import replace

    from shared.models import Action

    why = _redact(f"{plan.action.value} -> SEND_EMAIL: {exc}")
    fix = "\n".join(x for x in (decision.suggested_fix, plan.recommendation) if x)
    email = replace(decision, action=Action.SEND_EMAIL, notes=[*decision.notes, why], suggested_fix=fix)
    result = notifier.notify(snapshot, email, record) if notifier is not None else {"status": "not configured"}
    record.action = Action.SEND_EMAIL.value
    record.reason = _redact(f"{record.reason}; {why}")
    record.notification = _redact_obj(dict(result))
    record.action_result = {"fallback": "SEND_EMAIL", "error": _redact(f"{type(exc).__name__}: {exc}"),
                            "error_code": getattr(exc, "error_code", None)}
    record.status = "failed" if record.notification.get("status") == "failed" else "acted"


UNFINISHED_LOOKBACK_S = 7 * 86400   # how far back the sweep looks for unfinished work (as far as health counts)


def act_due(settings: Settings, *, client: DatabricksClient, store: Store, notifier: Notifier | None = None, now: int | None = None,
            lookback_s: int = UNFINISHED_LOOKBACK_S) -> list[DecisionRecord]:
    """Carry out act-mode decisions whose back-off has passed (called by every sweep); a retry
    decided more than RETRY_WITHIN_S ago is escalated instead (``shared.app.lifecycle.too_late``)."""
    from shared.app.lifecycle import resumable
    from shared.databricks.capture import capture_snapshot

    now = now or now_ms()
    done: list[DecisionRecord] = []
    for rec in store.list(since_ms=now - lookback_s * 1000):
        if rec.mode == "act" and resumable(rec, settings, now):
            try:
                done.append(resume_action(rec, settings, client=client, store=store, notifier=notifier, now=now))
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the others
                log.warning("cannot resume the action of %s yet: %s", rec.decision_key, exc)
                done.extend(_unreadable_too_late(rec, exc, store, notifier, now))
            continue
        if rec.status != "decided" or rec.mode != "act" or rec.not_before > now or _poison(rec):
            continue
        try:
            # The decision is made: confirm the run's state (runs/get) and read the job, no outputs.
            snapshot = capture_snapshot(client, rec.run_id, workspace_host=rec.workspace, store=None, outputs=False)
        except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the others
            log.warning("cannot re-read run %s for its due action: %s", rec.run_id, exc)
            done.extend(_unreadable_too_late(rec, exc, store, notifier, now))
            continue
        try:
            done.append(_due(rec, snapshot, settings, client=client, store=store, notifier=notifier, now=now))
        except Exception as exc:  # noqa: BLE001 - one odd record must not stop the others (health names it)
            log.warning("cannot carry out the due action of %s: %s", rec.decision_key, exc)
    return done


def _unreadable_too_late(rec: DecisionRecord, exc: Exception, store: Store, notifier: Notifier | None,
                         now: int) -> list[DecisionRecord]:
    """A retry whose run has not been readable (deleted, 404; no access) until it is too late to
    send (``shared.app.lifecycle.too_late``): hand it to a person, so it does not wait for ever."""
    from shared.app.lifecycle import hand_over, too_late

    if not too_late(rec, now):
        return []
    try:
        snapshot = _stub_snapshot(rec.run_id, rec.workspace, rec.job_id,
                                  message="the run could not be read from Databricks")
        cause = _redact(f"{type(exc).__name__}: {exc}")[:300]
        return [hand_over(rec, snapshot, decision_of_record(rec), store, notifier, now, cause=cause)]
    except Exception as err:  # noqa: BLE001 - health names what stays stuck
        log.warning("cannot hand over the action of %s: %s", rec.decision_key, err)
        return []


def _due(rec: DecisionRecord, snapshot: Snapshot, settings: Settings, *, client: DatabricksClient, store: Store,
         notifier: Notifier | None, now: int) -> DecisionRecord:
    """A decided act-mode record whose back-off has passed, its run read again: carry it out."""
    from shared.app.lifecycle import hand_over, too_late, with_cost
    from shared.databricks.actions import effective_decision

    if snapshot.decision_key != rec.decision_key:
        rec.status = "duplicate"
        rec.action_result = {"status": "superseded: the run was repaired or rerun meanwhile"}
        upd = store.update(rec)
        return upd.record if upd.ok and upd.record is not None else rec
    decision = decision_of_record(rec)
    if too_late(rec, now):
        return hand_over(rec, snapshot, decision, store, notifier, now)
    plan, cost = _plan(snapshot, decision, settings, store, now)
    decision = with_cost(rec, effective_decision(decision, plan), cost)
    return _act(rec, snapshot, decision, plan, settings, client=client, store=store, notifier=notifier).record


def resume_action(rec: DecisionRecord, settings: Settings, *, client: DatabricksClient, store: Store,
                  notifier: Notifier | None, now: int | None = None) -> DecisionRecord:
    """Move a retrying or stale acting record on, after asking Databricks what happened.

    A repair: a repair newer than the one the decision knew is in ``repair_history`` -> it ran
    (its answer was lost, or the worker died after the call): record its id, ``acted``. None ->
    send again with the same ``latest_repair_id`` (Databricks refuses a second repair if one
    slipped in). A submit: send again with the same ``idempotency_token`` (Databricks answers
    with the run it already made). A notification: notify again (one email per decision key).
    A retry decided more than RETRY_WITHIN_S ago is escalated instead of sent (``shared.app.lifecycle.too_late``)."""
    from shared.app.lifecycle import budget_again, hand_over, repair_since_decision, too_late, with_cost
    from shared.databricks.actions import effective_decision, plan_action
    from shared.databricks.budget import spend_rerun
    from shared.databricks.capture import capture_snapshot

    now = now or now_ms()
    # the decision is made: the run's state and repair history, and the job; no outputs
    snapshot = capture_snapshot(client, rec.run_id, workspace_host=rec.workspace, store=None, outputs=False)
    kind = (rec.action_request or {}).get("kind")
    if kind == "repair":
        found = repair_since_decision(snapshot, rec)
        if found is not None:
            rec.status = "acted"
            rec.action_result = {**(rec.action_result or {}), "repair_id": found,
                                 "reconciled": f"repair {found} found in the run's repair_history"}
            for k in ("next_at", "acting_since"):
                rec.action_result.pop(k, None)
            spend_rerun(rec, store)     # the worker may have died before counting it (once per decision)
            upd = store.update(rec)
            log.info("decision %s: reconciled with Databricks, repair %s ran", rec.decision_key, found)
            return upd.record if upd.ok else rec
    decision = decision_of_record(rec)
    if snapshot.decision_key != rec.decision_key and kind != "submit":
        rec.status = "duplicate"
        rec.action_result = {**(rec.action_result or {}), "status": "superseded: the run was repaired or rerun meanwhile"}
        upd = store.update(rec)
        return upd.record if upd.ok else rec
    if too_late(rec, now):
        return hand_over(rec, snapshot, decision, store, notifier, now)
    if budget_again(rec):       # surely not taken effect: held against the day's budget again
        plan, cost = _plan(snapshot, decision, settings, store, now)
        decision = with_cost(rec, effective_decision(decision, plan), cost)
    else:                       # may exist already: resent as it was granted
        plan = _no_rerun_from_partial_definition(plan_action(snapshot, decision, settings, now_ms=now), snapshot)
        decision = effective_decision(decision, plan)
    return _act(rec, snapshot, decision, plan, settings, client=client, store=store, notifier=notifier).record


def decision_of_record(rec: DecisionRecord) -> Decision:
    from shared.models import Action, Category

    d = rec.decision or {}
    return Decision(
        category=Category(rec.category), action=Action(rec.action), confidence=rec.confidence,
        decided_by=rec.decided_by, reason=rec.reason, excerpt=rec.excerpt,
        deciding_task=d.get("deciding_task"), failed_tasks=tuple(d.get("failed_tasks") or ()),
        evidence=tuple(d.get("evidence") or ()), params=dict(d.get("params") or {}),
        suggested_fix=d.get("suggested_fix", ""), fingerprint=rec.fingerprint,
        proposed_action=str(d.get("proposed_action") or ""), proposed_params=dict(d.get("proposed_params") or {}),
        approval=str(d.get("approval") or ""), model_only=bool(d.get("model_only")),
        precedent=d.get("precedent") if isinstance(d.get("precedent"), dict) else None,
    )


def retry_notifications(settings: Settings, *, client: DatabricksClient, store: Store, notifier: Notifier,
                        now: int | None = None, lookback_s: int = UNFINISHED_LOOKBACK_S) -> list[DecisionRecord]:
    """Send again the emails that failed (or were never recorded): called by every sweep, so a
    failed send is retried, never lost. The notifier sends at most one email per decision key."""
    from shared.databricks.capture import capture_snapshot
    from shared.errors import DatabricksNotFound
    from shared.notify import pending_notifications

    if notifier is None:
        return []
    now = now or now_ms()
    done: list[DecisionRecord] = []
    for rec in pending_notifications(store, since_ms=now - lookback_s * 1000, now_ms=now, max_attempts=10**6):
        n = rec.notification or {}
        tries = max(int(n.get("attempts") or 1), int(n.get("sends") or 0))   # sends: repeats of one request too
        if n.get("status") == "failed" and tries >= NOTIFY_ATTEMPTS:
            if not (rec.action_result or {}).get("notify_escalated"):
                # the owner's channel gave up: hand it to the escalation route (the next channels)
                rec.action_result = {**(rec.action_result or {}), "notify_escalated": _redact(
                    f"the notification failed {tries} time(s) ({n.get('error') or 'no detail'}); "
                    "escalated so a person is told")[:1000]}
            elif now - int(n.get("tried_at") or n.get("at") or 0) < UNDELIVERED_RESEND_S * 1000:
                continue        # undelivered: counted by health and report, tried again hourly
        if rec.decision_key.endswith("-triage-failed"):
            snapshot = _stub_snapshot(rec.run_id, rec.workspace, rec.job_id)
        else:
            try:
                snapshot = capture_snapshot(client, rec.run_id, workspace_host=rec.workspace, store=None,
                                            outputs=False)
            except DatabricksNotFound as exc:   # the run is gone for good: resend from what the record holds
                log.warning("run %s is gone (%s); its notification is resent from the decision", rec.run_id, exc)
                snapshot = _stub_snapshot(rec.run_id, rec.workspace, rec.job_id,
                                          message="the run could no longer be read from Databricks")
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not stop the others
                log.warning("cannot re-read run %s to resend its email: %s", rec.run_id, exc)
                continue
        try:
            decision = notification_decision(rec)
        except Exception as exc:  # noqa: BLE001 - one odd record must not stop the others (health names it)
            log.warning("cannot resend the notification of %s: %s", rec.decision_key, exc)
            continue
        rec.notification = {**_redact_obj(dict(notifier.notify(snapshot, decision, rec))), "tried_at": now}
        result = rec.action_result or {}
        delivered = "escalated" if result.get("escalated") or result.get("notify_escalated") else "acted"
        rec.status = "failed" if rec.notification.get("status") == "failed" else delivered
        upd = store.update(rec)
        done.append(upd.record if upd.ok else rec)
    return done


def _poison(rec: DecisionRecord) -> bool:
    """A 'triage failed' escalation: nothing to do in Databricks, its notification is all
    (``retry_notifications`` sends it if its process died), in shadow mode too."""
    return rec.decision_key.endswith("-triage-failed")


def report_triage_failure(run_id: int, error: str, settings: Settings, *, store: Store, notifier: Notifier | None = None,
                          workspace: str = "", job_id: str = "nojob",
                          action_result: dict | None = None) -> DecisionRecord:
    """Triage itself failed for a run (poison message): escalate, so nothing is dropped silently.
    ``action_result``: the poison path's re-triage schedule (shared.app.retriage)."""
    from shared.models import Action, Category

    reason = _redact(f"triage failed for run {run_id}: {error}")[:2000]
    decision = Decision(Category.UNKNOWN, Action.ESCALATE, 0.0, "policy", reason)
    record = DecisionRecord(decision_key=f"{run_id}-triage-failed", job_id=str(job_id or "nojob"), run_id=int(run_id),
                            workspace=workspace, category="UNKNOWN", action="ESCALATE", decided_by="policy",
                            reason=reason, mode=settings.mode, status="decided", decision=decision.to_dict(),
                            action_result=dict(action_result or {}))
    claim = store.claim(record)
    if not claim.won:
        return claim.record
    record = claim.record
    snapshot = _stub_snapshot(run_id, workspace, job_id)
    result = notifier.notify(snapshot, decision, record) if notifier is not None else {"status": "not configured"}
    record.notification = _redact_obj(dict(result))
    record.status = "failed" if record.notification.get("status") == "failed" else "acted"
    upd = store.update(record)
    return upd.record if upd.ok else record


def _stub_snapshot(run_id: int, workspace: str, job_id: str, *, message: str = "triage failed") -> Snapshot:
    from shared.snapshot import parse_snapshot

    run = {"run_id": int(run_id), "state": {"life_cycle_state": "INTERNAL_ERROR", "state_message": message}}
    if job_id and job_id != "nojob" and str(job_id).isdigit():
        run["job_id"] = int(job_id)
    return parse_snapshot({"run": run, "workspace_host": workspace})
