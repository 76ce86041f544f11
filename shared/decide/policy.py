"""The decision policy: category -> action, and the safety invariants every decision obeys.

``decide`` turns the rules' classification into a decision. ``enforce`` is applied to every
candidate decision afterwards — the rules', or one the LLM shaped — and is the one place the
invariants of the design doc are kept:

1. PERMISSION, CODE, DATA, CONFIGURATION or DEPENDENCY placed by the rules with confidence >= 0.6
   (FIRM_CONFIDENCE) is never retried automatically, whoever proposes it (DEPENDENCY's own
   package-source-unreachable rule aside).
4. The action follows from the category (``allowed_actions``): a candidate may only be more
   cautious than the table; RETRY_WITH_NEW_PARAMS only for RESOURCE. A retry resting on the model
   alone happens at most once per lineage. A retry the policy will not make becomes a request
   for a person's approval (``proposed_action``, ``approval: pending``) on a SEND_EMAIL.
2. Automatic retries per run lineage stop at max_retries (default 3, job tag
   ``triage.max_retries``, hard cap 10); then ESCALATE.
3. Parameter changes only within bounds (enforced again where the request is built, in shared.databricks.actions).
5. IGNORE only for CANCELED or an explicit job tag (``triage.ignore=true``).
Also: a fingerprint whose automatic retries kept failing is escalated instead of retried, and
a wrong retry costs one run at most: when our own retry of a lineage failed again the same way
(same fingerprint, the same top evidence, or the same category), it is not retried again
(``RetriedAttempt``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shared.config import Settings
from shared.models import (
    DEFAULT_ACTION,
    DETERMINISTIC,
    TRANSIENT,
    Action,
    Category,
    Classification,
    Decision,
)
from shared.decide.knob import knob_params, where_it_hit
from shared.snapshot import Snapshot

__all__ = [
    "ask_approval",
    "HARD_MAX_RETRIES",
    "HIGH_CONFIDENCE",
    "FIRM_CONFIDENCE",
    "FIRM_CATEGORIES",
    "MIN_RETRY_CONFIDENCE",
    "RANDOM_CATEGORIES",
    "RetriedAttempt",
    "same_failure",
    "MODEL_ONLY_RETRIES_PER_LINEAGE",
    "allowed_actions",
    "rules_action",
    "firm_rules_verdict",
    "max_retries_for",
    "decide",
    "enforce",
    "suggested_params",
]

HARD_MAX_RETRIES = 10
FIRM_CONFIDENCE = 0.6        # invariant 1: a rules verdict this sure is never overridden into a retry
HIGH_CONFIDENCE = FIRM_CONFIDENCE   # the older name
FIRM_CATEGORIES = DETERMINISTIC | {Category.DEPENDENCY}
MODEL_ONLY_RETRIES_PER_LINEAGE = 1  # invariant 4: retries resting on the model alone, per lineage
MIN_RETRY_CONFIDENCE = 0.5   # below this, a retry is not automatic: a person looks first

_TRUE = {"true", "1", "yes", "on"}

_FIX_HINTS = {
    Category.PERMISSION: "Grant the job's run-as identity the privilege named in the error, or run the job as an identity that has it.",
    Category.CODE: "Fix the code or query at the line the error names; the run will fail the same way until then.",
    Category.DATA: "Check that the input table/path exists and its data matches the expected schema and constraints.",
    Category.CONFIGURATION: "Correct the job or cluster setting the error names (node type, Spark version, parameter, widget, secret).",
    Category.DEPENDENCY: "Pin a library version that exists and is compatible with the cluster's runtime.",
    Category.RESOURCE: "Give the task more memory/disk (larger node type or more workers) or reduce the data per partition.",
    Category.UNKNOWN: "Read the run output; the failure matched no known pattern.",
}


# Categories whose repeat after our retry still says "the platform, not the job": a cloud
# provider's capacity, a lost node or a platform service fault is random with respect to the job,
# and its owner cannot fix it; a second identical failure means an outage or a quota that on-call
# owns. Every other category that failed the same way twice goes to the job's owner.
RANDOM_CATEGORIES = frozenset({Category.INFRASTRUCTURE})


@dataclass(frozen=True)
class RetriedAttempt:
    """The previous attempt of this run lineage, which our own automatic retry re-ran (read from
    the store by ``shared.learning.lineage``)."""

    decision_key: str
    fingerprint: str
    category: str
    top_evidence: str = ""      # the strongest citation of that decision, e.g. "exception OutOfMemoryError"
    excerpt: str = ""
    action: str = "RETRY"


def same_failure(decision: Decision, previous: RetriedAttempt | None) -> str:
    """How this failure repeats the retried attempt ('same fingerprint', 'same evidence ...'), or ''."""
    if previous is None:
        return ""
    if decision.fingerprint and decision.fingerprint == previous.fingerprint:
        return f"same fingerprint {decision.fingerprint}"
    top = decision.evidence[0] if decision.evidence else ""
    if top and top == previous.top_evidence and decision.category.value == previous.category:
        return f"same evidence ({top})"
    if decision.category.value == previous.category:
        # The rerun got no further than the same kind of failure (a stand-in or a platform may word
        # it differently): it was not transient for this job.
        return f"{previous.category} again"
    return ""


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    return line if len(line) <= 200 else line[:199] + "…"


def max_retries_for(snapshot: Snapshot, settings: Settings) -> tuple[int, str]:
    """The retry limit for this job and where it came from."""
    raw = snapshot.tags.get("triage.max_retries")
    if raw is not None:
        try:
            value = int(raw)
        except ValueError:
            return min(settings.max_retries, HARD_MAX_RETRIES), f"default (tag triage.max_retries={raw!r} is not a number)"
        return max(0, min(value, HARD_MAX_RETRIES)), "job tag triage.max_retries"
    return min(settings.max_retries, HARD_MAX_RETRIES), "default"


def suggested_params(classification: Classification) -> dict[str, Any]:
    """Bounded resize suggestions for RESOURCE failures: the knob where the failure hit
    (shared.decide.knob), applied and capped in shared.databricks.resize."""
    return knob_params(where_it_hit(classification))


def _reason(classification: Classification, action: Action, why: str) -> str:
    where = f" in task {classification.deciding_task}" if classification.deciding_task else ""
    cites = "; ".join(dict.fromkeys(e.cite() for e in classification.evidence[:3][:2])) or "no rule matched"
    return f"{classification.category.value}{where} ({cites}) -> {action.value}: {why}"


def rules_action(classification: Classification) -> Action:
    """What the rules alone do with this classification: the category table, and DEPENDENCY's
    own package-source-unreachable case (RETRY)."""
    if classification.category is Category.DEPENDENCY and classification.retryable_hint:
        return Action.RETRY
    return DEFAULT_ACTION[classification.category]


def firm_rules_verdict(classification: Classification) -> bool:
    """True when the rules place the failure in a category a person must fix, sure enough that no
    model, precedent or unsure verdict may turn it into an automatic retry (invariant 1)."""
    return (classification.category in FIRM_CATEGORIES
            and float(classification.confidence) >= FIRM_CONFIDENCE
            and not rules_action(classification).is_retry)


def allowed_actions(category: Category, classification: Classification | None = None) -> frozenset[Action]:
    """The actions a decision of ``category`` may carry (invariant 4): the table's action and
    anything more cautious. SEND_EMAIL and ESCALATE are always allowed except for CANCELED
    (IGNORE only); RETRY for the transient categories; RETRY_WITH_NEW_PARAMS only for RESOURCE;
    RETRY for DEPENDENCY only when the rules found the package source unreachable."""
    if category is Category.CANCELED:
        return frozenset({Action.IGNORE})
    out = {Action.SEND_EMAIL, Action.ESCALATE}
    if category in TRANSIENT:
        out.add(Action.RETRY)
    if category is Category.RESOURCE:
        out.add(Action.RETRY_WITH_NEW_PARAMS)
    if (category is Category.DEPENDENCY and classification is not None
            and classification.category is Category.DEPENDENCY and classification.retryable_hint):
        out.add(Action.RETRY)
    return frozenset(out)


def decide(snapshot: Snapshot, classification: Classification, settings: Settings) -> Decision:
    """The rules' decision for a classified failure (then ``enforce``)."""
    cat = classification.category
    action = DEFAULT_ACTION[cat]
    why = {
        Action.RETRY: "transient failure, repair the run",
        Action.RETRY_WITH_NEW_PARAMS: "resource exhaustion, rerun with a larger cluster",
        Action.SEND_EMAIL: "a person must fix this",
        Action.ESCALATE: "unknown failure, on-call should look",
        Action.IGNORE: "nothing to do",
    }[action]
    if action is Action.RETRY_WITH_NEW_PARAMS:
        why = f"resource exhaustion: {where_it_hit(classification).because()}"
    if cat is Category.DEPENDENCY and classification.retryable_hint:
        action, why = Action.RETRY, "the package source was unreachable, retry"
    params = suggested_params(classification) if action is Action.RETRY_WITH_NEW_PARAMS else {}
    failed = tuple(t.task_key for t in classification.tasks if not t.upstream_only and t.task_key)
    decision = Decision(
        category=cat,
        action=action,
        confidence=classification.confidence,
        decided_by="rules",
        reason=_reason(classification, action, why),
        excerpt=classification.excerpt,
        deciding_task=classification.deciding_task,
        failed_tasks=failed,
        evidence=tuple(e.cite() for e in classification.evidence[:5]),
        params=params,
        suggested_fix=_FIX_HINTS.get(cat, ""),
    )
    if classification.note:
        decision.notes.append(classification.note)
    return decision


def _override(decision: Decision, action: Action, why: str) -> Decision:
    d = replace(decision, action=action, params={} if action is not Action.RETRY_WITH_NEW_PARAMS else decision.params,
                notes=[*decision.notes, why])
    d.reason = f"{decision.reason.split(' -> ')[0]} -> {action.value}: {why}"
    if "policy" not in d.decided_by:
        d.decided_by = f"{d.decided_by}+policy"
    return d


def ask_approval(decision: Decision, action: Action, why: str) -> Decision:
    """The policy will not carry this retry out on its own: ``action`` instead, and the retry is
    recorded as a proposal awaiting a person's approval (docs/trust.md)."""
    proposed, params = decision.action, dict(decision.params) if decision.action is Action.RETRY_WITH_NEW_PARAMS else {}
    d = _override(decision, action, why + "; a person may approve the proposed "
                  f"{proposed.value}")
    d.proposed_action, d.proposed_params, d.approval, d.model_only = proposed.value, params, "pending", False
    return d


def enforce(
    decision: Decision,
    snapshot: Snapshot,
    classification: Classification,
    settings: Settings,
    *,
    prior_retries: int | None = None,
    failed_retries_of_fingerprint: int = 0,
    retried: RetriedAttempt | None = None,
    model_only_retries: int = 0,
) -> Decision:
    """Apply the safety invariants to a candidate decision. Pure; returns a new decision.

    ``retried`` is the previous attempt of this lineage when it was our own automatic retry.
    ``model_only_retries``: retries resting on the model alone already made in this run's
    lineage (counted in the store by shared.triage)."""
    tags = snapshot.tags
    # Invariant 5 (explicit tag): IGNORE when the job says so.
    if tags.get("triage.ignore", "").strip().lower() in _TRUE:
        d = replace(decision, action=Action.IGNORE, params={}, decided_by="policy",
                    notes=[*decision.notes, "job tag triage.ignore=true"])
        d.reason = f"{decision.category.value}: job tag triage.ignore=true -> IGNORE"
        return d

    decision = replace(decision, notes=list(decision.notes), params=dict(decision.params),
                       proposed_params=dict(decision.proposed_params), model_only=False)
    # Invariant 5: CANCELED comes from the run's state (the rules), never from a candidate.
    if decision.category is Category.CANCELED and classification.category is not Category.CANCELED:
        decision = _override(replace(decision, category=classification.category), rules_action(classification),
                             "CANCELED comes from the run's state, not from a model")
    # Invariant 4: the action follows from the category; a retry the category does not allow is
    # narrowed (new parameters -> plain retry) or becomes a proposal for a person.
    allowed = allowed_actions(decision.category, classification)
    if decision.action.is_retry and decision.action not in allowed:
        if Action.RETRY in allowed and decision.action is Action.RETRY_WITH_NEW_PARAMS:
            decision = _override(decision, Action.RETRY,
                                 f"new parameters only for RESOURCE failures, not {decision.category.value}")
        else:
            decision = ask_approval(decision, Action.ESCALATE if decision.category is Category.UNKNOWN else Action.SEND_EMAIL,
                            f"{decision.category.value} failures are not retried automatically")

    # Invariant 1: a firm deterministic verdict of the rules is never retried automatically.
    if decision.action.is_retry and firm_rules_verdict(classification):
        decision = ask_approval(
            replace(decision, category=classification.category),
            Action.SEND_EMAIL,
            f"rules place this in {classification.category.value} with confidence "
            f"{classification.confidence:.2f}: never retried automatically",
        )

    # Invariant 4: a retry resting on the model alone (the rules would not retry), once per lineage,
    # and never against a deterministic lead of the rules, however unsure (docs/trust.md says why).
    if decision.action.is_retry and "llm" in decision.decided_by.split("+") and not rules_action(classification).is_retry:
        if classification.category in FIRM_CATEGORIES:
            decision = ask_approval(replace(decision, category=classification.category), Action.SEND_EMAIL,
                            f"the rules lean to {classification.category.value} "
                            f"({classification.confidence:.2f}); a model alone does not retry against them")
        elif model_only_retries >= MODEL_ONLY_RETRIES_PER_LINEAGE:
            decision = ask_approval(decision, Action.SEND_EMAIL,
                            f"a retry resting on the model alone was already made in this lineage "
                            f"({model_only_retries}); not retried automatically again")
        else:
            decision.model_only = True

    # Invariant 5: IGNORE only for CANCELED (the tag case returned above).
    if decision.action is Action.IGNORE and decision.category is not Category.CANCELED:
        decision = _override(decision, Action.ESCALATE, "IGNORE is only for canceled runs or tagged jobs")
    if decision.category is Category.CANCELED and decision.action is not Action.IGNORE:
        decision = _override(decision, Action.IGNORE, "canceled, skipped or superseded: nothing to do")

    if decision.action.is_retry:
        # Too unsure to spend compute on automatically.
        if decision.confidence < MIN_RETRY_CONFIDENCE:
            decision = ask_approval(decision, Action.ESCALATE,
                            f"confidence {decision.confidence:.2f} is too low to retry automatically")
        elif how := same_failure(decision, retried):
            # A wrong retry costs one run at most: the retry failed the same way, so it was not
            # transient for this job; people look now (not after max_retries).
            to = Action.ESCALATE if decision.category in RANDOM_CATEGORIES else Action.SEND_EMAIL
            who = "on-call" if to is Action.ESCALATE else "the owner"
            decision = _override(decision, to, f"retried once; it failed the same way ({how}): {who} must look")
            decision.notes.append(f"attempt {retried.decision_key} ({retried.category}, our {retried.action}): "
                                  f"{_first_line(retried.excerpt) or '(no excerpt)'}")
            decision.notes.append(f"attempt {snapshot.decision_key} after the retry: "
                                  f"{_first_line(decision.excerpt) or '(no excerpt)'}")
        else:
            # Invariant 2: the retry limit of the run lineage.
            limit, source = max_retries_for(snapshot, settings)
            done = snapshot.prior_retries if prior_retries is None else max(prior_retries, snapshot.prior_retries)
            if done >= limit:
                decision = _override(decision, Action.ESCALATE, f"retry limit reached: {done} of {limit} ({source})")
            elif failed_retries_of_fingerprint >= settings.hopeless_after:
                decision = _override(
                    decision, Action.ESCALATE,
                    f"automatic retries of this failure fingerprint failed {failed_retries_of_fingerprint} times "
                    f"recently (limit {settings.hopeless_after})",
                )
    if decision.action is not Action.RETRY_WITH_NEW_PARAMS and decision.params:
        decision = replace(decision, params={})
    if not decision.action.is_retry:
        decision.model_only = False
    if decision.action.is_retry or decision.action is Action.IGNORE:
        decision.proposed_action, decision.proposed_params, decision.approval = "", {}, ""
    decision.confidence = max(0.0, min(1.0, float(decision.confidence)))
    return decision
