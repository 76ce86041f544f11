"""What the model may answer: the strict JSON schema (``VERDICT_SCHEMA``), the request sent and the
validated ``Verdict``. Unknown fields are dropped; text is bounded; nothing is executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.models import Action, Category
from shared.redact import redact

if TYPE_CHECKING:  # pragma: no cover
    pass


__all__ = ["PROMPT_VERSION", "VERDICT_SCHEMA", "LLMAnswer", "LLMRequest", "Verdict", "validate_verdict"]


PROMPT_VERSION = "triage-2025.1"
_MAX_TEXT = 1000               # root_cause / suggested_fix kept from the model
_MAX_REASON = 300
_SPARK_VALUE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

_MODEL_CATEGORIES = tuple(c.value for c in Category if c is not Category.CANCELED)
_MODEL_ACTIONS = tuple(a.value for a in Action if a is not Action.IGNORE)


# --- the answer schema ---------------------------------------------------------------------
class SparkConfSuggestion(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    key: str = Field(description="A Spark configuration key from limits.spark_conf_allowlist.")
    value: str = Field(description="Its new value, e.g. '400' or '8g'.")


class ParameterSuggestions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    num_workers: int | None = Field(description="New worker count, or null.")
    node_type: str | None = Field(description="New worker node type from limits.node_type_ladder, or null.")
    spark_conf: list[SparkConfSuggestion] = Field(description="Spark conf changes; [] for none.")


class LLMAnswer(BaseModel):
    """What the model must answer (the strict JSON schema is generated from this)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    category: Literal[_MODEL_CATEGORIES] = Field(description="The failure category.")  # type: ignore[valid-type]
    confidence: float = Field(ge=0.0, le=1.0, description="Probability that the category is right, 0..1.")
    is_transient: bool = Field(description="True if simply running again may succeed.")
    root_cause: str = Field(description="The root cause in one or two sentences.")
    recommended_action: Literal[_MODEL_ACTIONS] = Field(description="What to do.")  # type: ignore[valid-type]
    suggested_fix: str = Field(description="Concrete steps for the job owner.")
    parameters: ParameterSuggestions = Field(description="Bounded suggestions for RETRY_WITH_NEW_PARAMS.")


_UNSUPPORTED_SCHEMA_KEYS = {"title", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                            "minLength", "maxLength", "minItems", "maxItems", "pattern", "format"}


def _strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form strict structured outputs accept: refs inlined, every
    property required, no additional properties, no keywords some deployments reject (bounds
    are checked here instead)."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    raw.pop("description", None)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            out = {k: walk(v) for k, v in node.items() if k not in _UNSUPPORTED_SCHEMA_KEYS}
            if out.get("type") == "object" and "properties" in out:
                out["required"] = list(out["properties"])
                out["additionalProperties"] = False
            if "enum" in out and "type" not in out:
                out["type"] = "string"
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(raw)


VERDICT_SCHEMA: dict[str, Any] = _strict_schema(LLMAnswer)
_SCHEMA_NAME = "triage_verdict"
_KNOWN_FIELDS = frozenset(LLMAnswer.model_fields)


# --- request and verdict -------------------------------------------------------------------
@dataclass(frozen=True)
class LLMRequest:
    """One prompt, ready to send: the system prompt, the user message (a JSON document of
    redacted, bounded data), and what the budget check found."""

    system: str
    user: str
    fingerprint: str
    prompt_version: str = PROMPT_VERSION
    est_tokens: int = 0
    max_prompt_tokens: int = 0
    max_output_tokens: int = 800
    trimmed: tuple[str, ...] = ()

    @property
    def over_budget(self) -> bool:
        return bool(self.max_prompt_tokens) and self.est_tokens > self.max_prompt_tokens


@dataclass(frozen=True)
class Verdict:
    """The model's validated answer (``ok``), or why there is none (``reason``)."""

    ok: bool
    reason: str = ""
    category: Category | None = None
    confidence: float = 0.0
    is_transient: bool = False
    root_cause: str = ""
    recommended_action: Action | None = None
    suggested_fix: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    model: str = ""
    prompt_version: str = PROMPT_VERSION
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    @classmethod
    def fallback(cls, reason: str, *, backend: str = "", model: str = "", usage: Mapping[str, int] | None = None
                 ) -> "Verdict":
        return cls(ok=False, reason=_clean(reason, _MAX_REASON), backend=backend, model=model,
                   usage=dict(usage or {}))

    @classmethod
    def from_answer(cls, answer: LLMAnswer, *, backend: str = "", model: str = "",
                    usage: Mapping[str, int] | None = None, dropped: Iterable[str] = ()) -> "Verdict":
        p = answer.parameters
        params: dict[str, Any] = {}
        if p.num_workers is not None:
            params["num_workers"] = p.num_workers
        if p.node_type is not None:
            params["node_type"] = p.node_type
        if p.spark_conf:
            params["spark_conf"] = {c.key: c.value for c in p.spark_conf[:20]}
        return cls(
            ok=True,
            category=Category(answer.category),
            confidence=float(answer.confidence),
            is_transient=bool(answer.is_transient),
            root_cause=_clean(answer.root_cause, _MAX_TEXT),
            recommended_action=Action(answer.recommended_action),
            suggested_fix=_clean(answer.suggested_fix, _MAX_TEXT),
            params=params,
            backend=backend,
            model=model,
            usage=dict(usage or {}),
            dropped=tuple(dropped),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "status": "ok" if self.ok else "fallback",
            "backend": self.backend,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "cached": self.cached,
        }
        if not self.ok:
            d["reason"] = self.reason
        else:
            d.update(
                category=self.category.value if self.category else None,
                confidence=round(self.confidence, 3),
                is_transient=self.is_transient,
                root_cause=self.root_cause,
                recommended_action=self.recommended_action.value if self.recommended_action else None,
                suggested_fix=self.suggested_fix,
                params=dict(self.params),
            )
        if self.usage:
            d["usage"] = dict(self.usage)
        if self.dropped:
            d["dropped"] = list(self.dropped)
        return d

    @classmethod
    def from_cache(cls, value: Mapping[str, Any]) -> "Verdict | None":
        """A verdict from a cache entry, re-validated like a fresh answer (None when unusable)."""
        v = value.get("verdict") if isinstance(value, Mapping) else None
        if not isinstance(v, Mapping) or v.get("status") != "ok":
            return None
        raw = cls(ok=True, category=v.get("category"), confidence=v.get("confidence"),
                  is_transient=v.get("is_transient"), root_cause=v.get("root_cause") or "",
                  recommended_action=v.get("recommended_action"), suggested_fix=v.get("suggested_fix") or "",
                  params=dict(v.get("params") or {}), backend=str(v.get("backend", "")), model=str(v.get("model", "")),
                  prompt_version=str(v.get("prompt_version", PROMPT_VERSION)))
        checked = validate_verdict(raw)
        return replace(checked, cached=True) if checked.ok else None


def _enum_value(x: Any) -> Any:
    return x.value if isinstance(x, (Category, Action)) else x


def validate_verdict(verdict: Any) -> Verdict:
    """Check any backend's verdict against the answer schema (enums, types, 0..1 confidence)
    and clean its text. An ``ok`` verdict that fails becomes a fallback; unknown parameter
    names are dropped (and named in ``dropped``)."""
    if not isinstance(verdict, Verdict):
        return Verdict.fallback("the backend answered something other than a Verdict")
    if not verdict.ok:
        return verdict
    params = verdict.params if isinstance(verdict.params, Mapping) else {}
    conf = params.get("spark_conf") or {}
    try:
        answer = LLMAnswer.model_validate({
            "category": _enum_value(verdict.category),
            "confidence": verdict.confidence,
            "is_transient": verdict.is_transient,
            "root_cause": verdict.root_cause if verdict.root_cause is not None else "",
            "recommended_action": _enum_value(verdict.recommended_action),
            "suggested_fix": verdict.suggested_fix if verdict.suggested_fix is not None else "",
            "parameters": {
                "num_workers": params.get("num_workers"),
                "node_type": params.get("node_type"),
                "spark_conf": [{"key": k, "value": val} for k, val in conf.items()] if isinstance(conf, Mapping)
                else conf,
            },
        })
    except (ValidationError, TypeError, ValueError, AttributeError) as exc:
        where = ""
        if isinstance(exc, ValidationError):
            where = " (" + ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()[:4]) + ")"
        return Verdict.fallback(f"the verdict does not match the schema{where}", backend=str(verdict.backend or ""),
                                model=str(verdict.model or ""))
    extra = [f"unknown parameter {str(k)[:40]!r} dropped" for k in params
             if k not in ("num_workers", "node_type", "spark_conf")]
    checked = Verdict.from_answer(answer, backend=str(verdict.backend or ""), model=str(verdict.model or ""),
                                  usage=verdict.usage if isinstance(verdict.usage, Mapping) else None,
                                  dropped=(*tuple(verdict.dropped or ()), *extra))
    return replace(checked, cached=bool(verdict.cached), prompt_version=str(verdict.prompt_version or PROMPT_VERSION))


def _clean(text: Any, limit: int) -> str:
    """Model or error text made safe to store and show: redacted, one paragraph, bounded."""
    t = redact(str(text or ""))
    t = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", t).replace(" -> ", " - ").strip()
    return t if len(t) <= limit else t[: limit - 3].rstrip() + "..."


