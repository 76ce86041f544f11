"""Deciding (``classify.classify`` and ``fingerprint.fingerprint`` are imported from their modules): what kind of failure this is and what to do about it. Pure: no I/O, no SDK import.

- ``rootcause``: the cause in the error text (deepest ``Caused by:``, last traceback line,
  error classes, SQLSTATEs), bounded for multi-megabyte traces.
- ``rules``: the rules, as data: one row per rule, each with an example its test checks.
- ``classify``: applies the rules to every failed task of a run.
- ``policy``: the category's action, and the safety invariants enforced on every decision.
- ``fingerprint``: the error with ids, numbers, paths and times normalised, for caching and history.
"""

from __future__ import annotations

from shared.decide.classify import classify_text
from shared.decide.fingerprint import normalise
from shared.decide.policy import HARD_MAX_RETRIES, HIGH_CONFIDENCE, decide, enforce, max_retries_for
from shared.decide.rootcause import RootCause, extract
from shared.decide.rules import RULES, Rule

__all__ = [
    "classify_text",
    "normalise",
    "HARD_MAX_RETRIES",
    "HIGH_CONFIDENCE",
    "decide",
    "enforce",
    "max_retries_for",
    "RootCause",
    "extract",
    "RULES",
    "Rule",
]
