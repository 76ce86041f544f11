"""Plain data shared by every part of the pipeline: the taxonomy, evidence, decisions.

Nothing here does I/O. The snapshot types live in ``shared.snapshot``; the stored decision
record in ``shared.store``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "Category",
    "Action",
    "EvidenceKind",
    "Evidence",
    "TaskVerdict",
    "Classification",
    "Decision",
    "DETERMINISTIC",
    "TRANSIENT",
    "DEFAULT_ACTION",
]


class Category(str, Enum):
    TIMEOUT = "TIMEOUT"
    RESOURCE = "RESOURCE"
    NETWORK = "NETWORK"
    INFRASTRUCTURE = "INFRASTRUCTURE"
    CONCURRENCY = "CONCURRENCY"
    PERMISSION = "PERMISSION"
    CODE = "CODE"
    DATA = "DATA"
    DEPENDENCY = "DEPENDENCY"
    CONFIGURATION = "CONFIGURATION"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


class Action(str, Enum):
    RETRY = "RETRY"
    RETRY_WITH_NEW_PARAMS = "RETRY_WITH_NEW_PARAMS"
    SEND_EMAIL = "SEND_EMAIL"
    ESCALATE = "ESCALATE"
    IGNORE = "IGNORE"

    def __str__(self) -> str:
        return self.value

    @property
    def is_retry(self) -> bool:
        return self in (Action.RETRY, Action.RETRY_WITH_NEW_PARAMS)


# Failures a person must fix: retrying them only burns compute (policy invariant 1).
DETERMINISTIC = frozenset({Category.PERMISSION, Category.CODE, Category.DATA, Category.CONFIGURATION})
# Failures that may pass on a second attempt.
TRANSIENT = frozenset(
    {Category.TIMEOUT, Category.RESOURCE, Category.NETWORK, Category.INFRASTRUCTURE, Category.CONCURRENCY}
)

DEFAULT_ACTION = {
    Category.TIMEOUT: Action.RETRY,
    Category.RESOURCE: Action.RETRY_WITH_NEW_PARAMS,
    Category.NETWORK: Action.RETRY,
    Category.INFRASTRUCTURE: Action.RETRY,
    Category.CONCURRENCY: Action.RETRY,
    Category.PERMISSION: Action.SEND_EMAIL,
    Category.CODE: Action.SEND_EMAIL,
    Category.DATA: Action.SEND_EMAIL,
    Category.DEPENDENCY: Action.SEND_EMAIL,
    Category.CONFIGURATION: Action.SEND_EMAIL,
    Category.CANCELED: Action.IGNORE,
    Category.UNKNOWN: Action.ESCALATE,
}


class EvidenceKind(str, Enum):
    """Where a rule looks, strongest first (the order of the design doc)."""

    RESULT_STATE = "result_state"          # run/task result or life-cycle state
    TERMINATION_CODE = "termination_code"  # status.termination_details.code
    TERMINATION_TYPE = "termination_type"  # status.termination_details.type
    CLUSTER_EVENT = "cluster_event"        # a clusters/events event type or termination reason code
    ERROR_CLASS = "error_class"            # [ERROR_CLASS] in the text
    SQLSTATE = "sqlstate"                  # SQLSTATE: 42P01
    EXCEPTION = "exception"                # exception type along the cause chain
    VETO = "veto"                          # a fixed condition in the cause chain: vetoes a transient reading
    PHRASE = "phrase"                      # a phrase in the error text or state message

    @property
    def strength(self) -> int:
        return _STRENGTH[self]


_STRENGTH = {
    EvidenceKind.RESULT_STATE: 9,
    EvidenceKind.TERMINATION_CODE: 8,
    EvidenceKind.CLUSTER_EVENT: 7,
    EvidenceKind.ERROR_CLASS: 6,
    EvidenceKind.SQLSTATE: 5,
    EvidenceKind.EXCEPTION: 4,
    EvidenceKind.VETO: 3,
    EvidenceKind.PHRASE: 2,
    EvidenceKind.TERMINATION_TYPE: 1,
}


@dataclass(frozen=True)
class Evidence:
    """One rule that matched: which rule, on what kind of evidence, and the text it matched."""

    rule_id: str
    kind: EvidenceKind
    category: Category
    confidence: float
    matched: str            # the matched text, short (a code, a class name, a phrase)
    task_key: str | None = None
    retryable_hint: bool | None = None  # e.g. DEPENDENCY whose package index was unreachable

    def cite(self) -> str:
        """A short citation for a reason line: 'termination code CLOUD_FAILURE'."""
        label = {
            EvidenceKind.RESULT_STATE: "result state",
            EvidenceKind.TERMINATION_CODE: "termination code",
            EvidenceKind.TERMINATION_TYPE: "termination type",
            EvidenceKind.CLUSTER_EVENT: "cluster event",
            EvidenceKind.ERROR_CLASS: "error class",
            EvidenceKind.SQLSTATE: "SQLSTATE",
            EvidenceKind.EXCEPTION: "exception",
            EvidenceKind.VETO: "fixed condition",
            EvidenceKind.PHRASE: "text",
        }[self.kind]
        m = self.matched if len(self.matched) <= 80 else self.matched[:77] + "..."
        return f"{label} {m}" if self.kind not in (EvidenceKind.PHRASE, EvidenceKind.VETO) else f"{label} '{m}'"


@dataclass(frozen=True)
class TaskVerdict:
    """The classification of one failed task (or of the run, for single-task/legacy runs)."""

    task_key: str | None
    run_id: int | None
    category: Category
    confidence: float
    evidence: tuple[Evidence, ...]
    excerpt: str
    upstream_only: bool = False

    @property
    def top(self) -> Evidence | None:
        return self.evidence[0] if self.evidence else None


@dataclass(frozen=True)
class Classification:
    """What the failure is: the deciding task's verdict plus every task's."""

    category: Category
    confidence: float
    evidence: tuple[Evidence, ...]
    excerpt: str
    deciding_task: str | None
    tasks: tuple[TaskVerdict, ...] = ()
    note: str = ""          # e.g. 'deterministic failure in task a outweighs transient in b'

    @property
    def retryable_hint(self) -> bool | None:
        return self.evidence[0].retryable_hint if self.evidence else None


@dataclass
class Decision:
    """What to do about a failure, and why. ``decided_by`` is 'rules', 'llm', 'rules+llm', 'precedent',
    'person' or 'policy' (``+policy`` when the policy changed the candidate's action).

    ``proposed_action``/``proposed_params``: a retry someone (the model, a precedent, an unsure
    verdict) proposed that the policy would not carry out on its own; ``approval`` is then
    'pending' until a person approves or rejects it (docs/trust.md). ``model_only``: a retry that
    rests on the model alone (the rules would not retry), counted once per lineage."""

    category: Category
    action: Action
    confidence: float
    decided_by: str
    reason: str
    excerpt: str = ""
    deciding_task: str | None = None
    failed_tasks: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()           # citations, strongest first
    params: dict[str, Any] = field(default_factory=dict)  # bounded suggestions for RETRY_WITH_NEW_PARAMS
    suggested_fix: str = ""
    fingerprint: str = ""
    llm: dict[str, Any] | None = None        # the model's validated verdict, when one was asked
    notes: list[str] = field(default_factory=list)  # policy overrides, disagreements, fallbacks
    proposed_action: str = ""                # RETRY | RETRY_WITH_NEW_PARAMS awaiting a person's approval
    proposed_params: dict[str, Any] = field(default_factory=dict)
    approval: str = ""                       # "" | pending (then approved | rejected on the record)
    model_only: bool = False                 # a retry that rests on the model alone
    precedent: dict[str, Any] | None = None  # the precedent that decided it (id, correction, scope)

    def as_proposed(self) -> "Decision":
        """This decision with its proposed retry as the action (what approving it would do)."""
        from dataclasses import replace

        return replace(self, action=Action(self.proposed_action), params=dict(self.proposed_params))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["category"] = self.category.value
        d["action"] = self.action.value
        d["confidence"] = round(float(self.confidence), 3)
        d["failed_tasks"] = list(self.failed_tasks)
        d["evidence"] = list(self.evidence)
        return d
