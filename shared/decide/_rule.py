"""The rule row (``Rule``, written ``R(...)`` in the tables) — see ``shared.decide.rules``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from shared.models import Category, EvidenceKind

__all__ = ["Rule", "R"]


@dataclass(frozen=True)
class Rule:
    id: str
    kind: EvidenceKind
    pattern: str
    category: Category
    confidence: float
    example: str
    retryable: bool | None = None
    check: Callable[[re.Match], bool] | None = field(default=None, compare=False)  # phrase and veto rows only
    regex: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence <= 1.0:
            raise ValueError(f"rule {self.id}: confidence {self.confidence} is outside (0, 1]")
        flags = re.IGNORECASE if self.kind in (EvidenceKind.PHRASE, EvidenceKind.VETO) else 0
        object.__setattr__(self, "regex", re.compile(self.pattern, flags))

    def matches_value(self, value: str) -> bool:
        return self.regex.fullmatch(value) is not None

    def search(self, text: str) -> re.Match | None:
        """A phrase match, when the row's check (if any) accepts it."""
        if self.check is None:
            return self.regex.search(text)
        return next((m for m in self.regex.finditer(text) if self.check(m)), None)


def R(id, kind, pattern, category, confidence, example, retryable=None, check=None) -> Rule:  # noqa: N802
    return Rule(id, kind, pattern, category, confidence, example, retryable, check)


