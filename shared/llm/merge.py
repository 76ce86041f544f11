"""When to ask, and how the answer combines with the rules without giving the model power: it may
settle an UNKNOWN or an unsure rules verdict; it may not make a firm deterministic verdict
retryable, may not choose IGNORE or CANCELED, and its parameter suggestions pass the same
bounds as the rules'.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping, Sequence


from shared.models import DEFAULT_ACTION, DETERMINISTIC, TRANSIENT, Action, Category, Classification, Decision

if TYPE_CHECKING:  # pragma: no cover
    from shared.config import Settings

from shared.llm.schema import Verdict, _SPARK_VALUE, _clean, validate_verdict

__all__ = ["should_consult", "bound_params", "merge"]



# A rules verdict at least this sure is firm (policy invariant 1); kept equal to
# shared.decide.policy.FIRM_CONFIDENCE (a test pins the two together).
FIRM_RULES_CONFIDENCE = 0.6
_FIRM_CATEGORIES = DETERMINISTIC | {Category.DEPENDENCY}
# The model may turn an unsure deterministic rules verdict into a retry only when this sure.
_MODEL_OVERTURN_CONFIDENCE = 0.8

# --- when, and how the answer combines with the rules --------------------------------------
def should_consult(classification: Classification, settings: "Settings") -> bool:
    """True when the rules are unsure (confidence below TRIAGE_LLM_MIN_RULE_CONFIDENCE) or say
    UNKNOWN; never for CANCELED."""
    if classification.category is Category.CANCELED:
        return False
    if classification.category is Category.UNKNOWN:
        return True
    return float(classification.confidence) < float(settings.llm_min_rule_confidence)


def _ladder_index(ladder: Sequence[str], node_type: Any) -> int | None:
    try:
        return list(ladder).index(str(node_type))
    except ValueError:
        return None


def _current_workers(cluster: Mapping[str, Any] | None) -> int | None:
    if not cluster:
        return None
    n = cluster.get("num_workers")
    if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
        return n
    auto = cluster.get("autoscale")
    if isinstance(auto, Mapping) and isinstance(auto.get("max_workers"), int):
        return int(auto["max_workers"])
    return None


def bound_params(params: Mapping[str, Any], settings: "Settings", cluster: Mapping[str, Any] | None = None
                 ) -> tuple[dict[str, Any], list[str]]:
    """Keep only allow-listed parameter suggestions, within bounds (policy invariant 3).

    - ``num_workers``: a whole number >= 1, at most ``settings.max_workers`` and at most twice
      the current count (when the current cluster is known); clamped, with a note.
    - ``node_type``: on ``settings.node_type_ladder`` and at most one step above the current
      node type; dropped when the ladder is empty or the current type is not on it.
    - ``spark_conf``: keys in ``settings.spark_conf_allowlist``, short plain values.
    Returns (params, notes)."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    if not isinstance(params, Mapping):
        return out, ["parameter suggestions were not an object: dropped"]
    for key in params:
        if key not in ("num_workers", "node_type", "spark_conf"):
            notes.append(f"parameter {str(key)[:40]!r} is not allow-listed: dropped")
    n = params.get("num_workers")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            notes.append(f"num_workers {str(n)[:20]!r} is not a positive whole number: dropped")
        else:
            cap = int(settings.max_workers)
            current = _current_workers(cluster)
            if current is not None:
                cap = min(cap, max(1, current) * 2)
            if n > cap:
                notes.append(f"num_workers {n} above the bound {cap}: clamped")
                n = cap
            out["num_workers"] = n
    node = params.get("node_type")
    if node is not None:
        ladder = tuple(settings.node_type_ladder)
        want = _ladder_index(ladder, node)
        current_idx = _ladder_index(ladder, (cluster or {}).get("node_type_id")) if cluster else None
        if want is None:
            notes.append(f"node type {str(node)[:60]!r} is not on the ladder: dropped")
        elif current_idx is None:
            notes.append(f"node type {node!r} dropped: the current node type is not on the ladder")
        elif want > current_idx + 1:
            notes.append(f"node type {node!r} is more than one step up the ladder: dropped")
        elif want != current_idx:
            out["node_type"] = ladder[want]
    conf = params.get("spark_conf")
    if conf:
        allow = set(settings.spark_conf_allowlist)
        kept: dict[str, str] = {}
        if isinstance(conf, Mapping):
            for k, v in list(conf.items())[:20]:
                if k not in allow:
                    notes.append(f"spark conf key {str(k)[:60]!r} is not allow-listed: dropped")
                elif not isinstance(v, (str, int, float)) or isinstance(v, bool) or not _SPARK_VALUE.fullmatch(str(v)):
                    notes.append(f"spark conf value for {k!r} is not a plain value: dropped")
                else:
                    kept[str(k)] = str(v)
        else:
            notes.append("spark_conf was not an object: dropped")
        if kept:
            out["spark_conf"] = kept
    return out, notes


def _allowed_action(category: Category, action: Action | None, is_transient: bool) -> tuple[Action, str]:
    """The model's action if its category allows it, else the category's safe default."""
    default = DEFAULT_ACTION[category]
    if action is None:
        return default, "no action in the answer"
    if action is Action.IGNORE:
        return (default if default is not Action.IGNORE else Action.ESCALATE), "IGNORE is not the model's to choose"
    if action.is_retry:
        retryable = category in TRANSIENT or category is Category.DEPENDENCY
        if category in DETERMINISTIC or not retryable:
            safe = Action.SEND_EMAIL if category in DETERMINISTIC else Action.ESCALATE
            return safe, f"{category.value} failures are not retried"
        if not is_transient:
            return (Action.ESCALATE, "the model called it not transient yet asked for a retry")
        if action is Action.RETRY_WITH_NEW_PARAMS and category is not Category.RESOURCE:
            return Action.RETRY, "new parameters only for RESOURCE failures"
    return action, ""


def merge(
    rule_decision: Decision,
    verdict: Verdict | None,
    settings: "Settings",
    *,
    cluster: Mapping[str, Any] | None = None,
) -> Decision:
    """Combine the rules' decision with the model's verdict into a candidate decision.

    ``decided_by`` is 'rules' when the rules stand, 'llm' when the model settles it, and
    'rules+llm' when both agree. The model's verdict is recorded in ``decision.llm``;
    disagreements, adjustments and fallbacks in ``decision.notes``. Safe on its own: the
    model cannot make a firm deterministic rules verdict retryable, cannot choose IGNORE or
    CANCELED, and its parameters are bounded (``bound_params``)."""
    d = replace(rule_decision, notes=list(rule_decision.notes), params=dict(rule_decision.params))
    if verdict is None:
        return d
    verdict = validate_verdict(verdict)
    d.llm = verdict.to_dict()
    if not verdict.ok or verdict.category is None:
        d.notes.append(f"LLM fallback: {verdict.reason or 'no usable answer'}; the rules decide")
        return d
    if verdict.dropped:
        d.notes.append("LLM answer: " + "; ".join(verdict.dropped))
    rules_cat, rules_conf = rule_decision.category, float(rule_decision.confidence)
    model_cat = verdict.category
    model_conf = max(0.0, min(1.0, float(verdict.confidence)))
    firm = (rules_cat in _FIRM_CATEGORIES and rules_conf >= FIRM_RULES_CONFIDENCE
            and not rule_decision.action.is_retry)
    model_action, why = _allowed_action(model_cat, verdict.recommended_action, verdict.is_transient)
    view = (f"rules {rules_cat.value} ({rules_conf:.2f}) -> {rule_decision.action.value}; "
            f"model {model_cat.value} ({model_conf:.2f}) -> "
            f"{verdict.recommended_action.value if verdict.recommended_action else '?'}")

    def rules_stand(reason: str) -> Decision:
        d.decided_by = "rules"
        d.notes.append(f"LLM disagrees ({view}); the rules stand: {reason}")
        if model_action.is_retry and not d.action.is_retry and d.action is not Action.IGNORE:
            # Not the model's to decide: a person may approve it (shared.decide.policy keeps it so).
            d.proposed_action, d.approval = model_action.value, "pending"
            if model_action is Action.RETRY_WITH_NEW_PARAMS:
                d.proposed_params, notes = bound_params(verdict.params, settings, cluster)
                d.notes.extend(f"LLM parameters: {n}" for n in notes)
                d.proposed_params = d.proposed_params or {"num_workers_factor": 2}
        return d

    if model_cat is Category.CANCELED:
        return rules_stand("CANCELED comes from the run state, not from a model")
    if rules_cat is Category.CANCELED:
        return rules_stand("the run was canceled")
    if model_cat is Category.UNKNOWN and rules_cat is not Category.UNKNOWN:
        return rules_stand("the model could not place it")
    agree = model_cat is rules_cat
    asked_retry = bool(verdict.recommended_action and verdict.recommended_action.is_retry)
    if firm and (not agree or asked_retry or model_action.is_retry):
        return rules_stand(f"the rules are confident ({rules_conf:.2f}) in {rules_cat.value}, never retried")
    if (rules_cat in _FIRM_CATEGORIES and not rule_decision.action.is_retry and model_action.is_retry and not agree
            and (model_conf < _MODEL_OVERTURN_CONFIDENCE or not verdict.is_transient)):
        return rules_stand(f"a retry of a {rules_cat.value} failure needs a confident, transient verdict")

    action = model_action
    if why:
        d.notes.append(f"LLM action {verdict.recommended_action.value if verdict.recommended_action else '?'} "
                       f"changed to {action.value}: {why}")
    if agree and action is rule_decision.action:
        d.decided_by = "rules+llm"
        d.confidence = max(rules_conf, model_conf)
    else:
        d.decided_by = "llm"
        d.confidence = model_conf
        d.notes.append(f"LLM {'refines' if agree else 'disagrees'} ({view}); the model decides: the rules were "
                       + ("unsure" if rules_cat is not Category.UNKNOWN else "without a match"))
    d.category = model_cat
    d.action = action
    if action is Action.RETRY_WITH_NEW_PARAMS:
        bounded, notes = bound_params(verdict.params, settings, cluster)
        d.notes.extend(f"LLM parameters: {n}" for n in notes)
        params = {k: v for k, v in d.params.items()
                  if not (k == "num_workers_factor" and "num_workers" in bounded)
                  and not (k == "node_type_step" and "node_type" in bounded)}
        params.update(bounded)
        if not params:
            params = {"num_workers_factor": 2}
        d.params = params
    else:
        if verdict.params:
            d.notes.append("LLM parameters ignored: the action is not RETRY_WITH_NEW_PARAMS")
        d.params = {}
    if verdict.suggested_fix:
        d.suggested_fix = verdict.suggested_fix
    where = f" in task {rule_decision.deciding_task}" if rule_decision.deciding_task else ""
    cause = _clean(verdict.root_cause, 240) or "no root cause given"
    d.reason = f"{model_cat.value}{where} (LLM: {cause}) -> {action.value}: {_why(action)}"
    return d


def _why(action: Action) -> str:
    return {
        Action.RETRY: "transient failure, repair the run",
        Action.RETRY_WITH_NEW_PARAMS: "rerun with bounded new parameters",
        Action.SEND_EMAIL: "a person must fix this",
        Action.ESCALATE: "unclear failure, on-call should look",
        Action.IGNORE: "nothing to do",
    }[action]


