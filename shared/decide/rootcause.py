"""Root-cause extraction from error text: Python tracebacks, JVM traces with ``Caused by:``
chains, ``Py4JJavaError`` wrappers, Spark/Delta error classes and SQLSTATEs, Databricks
state messages.

Traces can be megabytes. Work is bounded: stack-frame lines are dropped, and from a long
text only the head, the tail and every cause/exception line are kept, so a 5 MB trace costs
one linear pass plus regex work on at most ``MAX_ANALYSED`` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.redact import redact

__all__ = ["RootCause", "extract", "root_line", "MAX_ANALYSED", "MAX_EXCERPT"]

MAX_ANALYSED = 64_000      # characters of text the rules look at
MAX_EXCERPT = 2_000        # characters of the excerpt shown to people (and the LLM)
_HEAD = MAX_ANALYSED // 2
_TAIL = MAX_ANALYSED // 4
_MAX_RAW = 1_000_000        # above this, only head, tail and cause lines are even split
_RAW_HEAD = 200_000
_RAW_TAIL = 100_000
_MAX_LINE = 2_000

# A JVM stack frame ("at org.x.Y.z(Y.scala:12)"), Python frame lines and Spark's
# "... 42 more" markers: they rarely carry the cause and make up most of a long trace.
_FRAME = re.compile(r"^\s*(?:\|\s*)?(?:at [\w$.<>/\-]+\(.*\)|at [\w$.<>/\-]+ \(.*\)|\.\.\. \d+ more)\s*$")
_PY_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')
_CAUSE_HINT = re.compile(r"Caused by|Exception|Error|Traceback|FAILED|SQLSTATE|\[[A-Z][A-Z0-9_]+", re.ASCII)

# [ERROR_CLASS] or [ERROR_CLASS.SUB_CLASS]: upper case with at least one underscore,
# or one of a few single-word classes; log levels in brackets are not error classes.
_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?:\.[A-Z0-9_]+)*)\]")
# Unity Catalog and REST errors name their class as "ErrorClass=TABLE_DOES_NOT_EXIST.RESOURCE_DOES_NOT_EXIST"
# or "error_code": "INVALID_PARAMETER_VALUE".
# Databricks REST/SDK errors put the code before a colon: "RestException: RESOURCE_DOES_NOT_EXIST: Node …",
# "ServerOperationError: DEADLINE_EXCEEDED: This operation took too long".
_ERROR_CLASS_KV = re.compile(
    r"(?:ErrorClass=|\berror_code\W{1,4}|(?<![\w.])(?=[A-Z0-9_]*_)(?=[A-Z0-9_]+: [A-Za-z]))"
    r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?:\.[A-Z0-9_]+)*)")
_SQLSTATE = re.compile(r"SQLSTATE\s*[:=]?\s*\(?\s*([0-9A-Z]{5})\b")
# Exception and error type names (qualified or not).
_EXC = re.compile(
    r"(?<![\w$.])((?:[A-Za-z_][\w$]*\.)*[A-Za-z_$][\w$]*?(?:Exception|Error|Failure|Throwable|Exit|Interrupt))(?![\w$])"
)
_CAUSED_BY = re.compile(r"^\s*Caused by:\s*(.+)$")
_PY_LAST = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)):\s?(.*)$")
_NOISE_EXC = {"Error", "Exception", "Failure", "FAILED", "SparkException", "Py4JJavaError", "ExecutionError",
              "WorkflowException", "RuntimeException", "StreamingQueryException", "Throwable"}


@dataclass(frozen=True)
class RootCause:
    text: str                         # the bounded text the rules look at
    exceptions: tuple[str, ...]       # simple exception names, outermost first, deduplicated
    qualified: tuple[str, ...]        # the same, fully qualified where the text had it
    error_classes: tuple[str, ...]    # ERROR_CLASS (and ERROR_CLASS.SUB) in order of appearance
    sqlstates: tuple[str, ...]
    excerpt: str                      # short, human-readable root cause
    original_length: int

    @property
    def truncated(self) -> bool:
        return self.original_length > len(self.text)


def _clip(line: str) -> str:
    return line if len(line) <= _MAX_LINE else line[:_MAX_LINE] + " …"


def _bounded_lines(text: str) -> list[str]:
    """Drop stack frames; from what is left keep the head, every cause line of the middle
    and the tail, within MAX_ANALYSED characters. One linear pass over the text."""
    if len(text) > _MAX_RAW:  # do not even split a huge middle into a list of every line
        middle = (ln for ln in text[_RAW_HEAD:-_RAW_TAIL].splitlines() if _CAUSE_HINT.search(ln[:300]))
        raw = [*text[:_RAW_HEAD].splitlines(), *middle, *text[-_RAW_TAIL:].splitlines()]
    else:
        raw = text.splitlines()
    lines = [_clip(ln) for ln in raw if not _FRAME.match(ln)]
    if sum(len(ln) + 1 for ln in lines) <= MAX_ANALYSED:
        return lines

    def take(seq, budget):
        kept, used = [], 0
        for ln in seq:
            if used + len(ln) + 1 > budget:
                break
            kept.append(ln)
            used += len(ln) + 1
        return kept, used

    head, used_head = take(lines, _HEAD)
    tail_rev, used_tail = take(reversed(lines[len(head):]), _TAIL)
    tail = tail_rev[::-1]
    middle_src = lines[len(head) : len(lines) - len(tail)]
    middle, _ = take((ln for ln in middle_src if _CAUSE_HINT.search(ln[:300])), MAX_ANALYSED - used_head - used_tail)
    return [*head, "…[trace shortened]…", *middle, *tail]


def _simple(name: str) -> str:
    return name.rsplit(".", 1)[-1].rsplit("$", 1)[-1]


def extract(text: str) -> RootCause:
    """Find the cause chain, error classes and SQLSTATEs in error text, within bounded work."""
    original = len(text or "")
    lines = _bounded_lines(text or "")
    bounded = "\n".join(lines)

    qualified: list[str] = []
    for m in _EXC.finditer(bounded):
        q = m.group(1).strip(".")
        if q not in qualified:
            qualified.append(q)
        if len(qualified) >= 64:
            break
    simple: list[str] = []
    for q in qualified:
        s = _simple(q)
        if s not in simple:
            simple.append(s)

    classes: list[str] = []
    for m in (*_ERROR_CLASS.finditer(bounded), *_ERROR_CLASS_KV.finditer(bounded)):
        c = m.group(1)
        if c not in classes:
            classes.append(c)
    states = list(dict.fromkeys(m.group(1) for m in _SQLSTATE.finditer(bounded)))

    return RootCause(
        text=bounded,
        exceptions=tuple(simple),
        qualified=tuple(qualified),
        error_classes=tuple(classes),
        sqlstates=tuple(states),
        excerpt=_excerpt(lines),
        original_length=original,
    )


def _is_informative(line: str) -> bool:
    s = line.strip()
    if not s or s.startswith("at ") or _PY_FRAME.match(s) or s.startswith(("---", "===", "~~~", "^")):
        return False
    if s in _CONNECTORS:
        return False
    return True


def _excerpt(lines: list[str]) -> str:
    """The root cause for people: the deepest 'Caused by', error-class lines, the last
    Python exception line, then the first informative lines — bounded."""
    picked: list[str] = []

    def add(line: str) -> None:
        s = line.strip()
        if s and s not in picked:
            if len(s) > 600:   # redact before cutting: a secret cut in half no longer looks like one
                s = redact(s)
                s = s if len(s) <= 600 else s[:600] + " …"
            picked.append(s)

    causes = [m.group(1) for ln in lines if (m := _CAUSED_BY.match(ln))]
    if causes:
        add(causes[-1])
    for ln in lines:
        if _ERROR_CLASS.search(ln) and _is_informative(ln):
            add(ln)
            break
    py_last = [ln for ln in lines if _PY_LAST.match(ln.strip()) and not ln.strip().startswith(_NOISE_PREFIXES)]
    if py_last:
        add(py_last[-1])
    for ln in lines:
        if sum(len(p) + 1 for p in picked) > MAX_EXCERPT // 2:
            break
        if _is_informative(ln):
            add(ln)
    out = "\n".join(picked)
    return out if len(out) <= MAX_EXCERPT else out[: MAX_EXCERPT - 2] + " …"


_NOISE_PREFIXES = ("Py4JJavaError", "py4j.protocol.Py4JJavaError")
# Lines that join or introduce parts of a trace and say nothing about the cause.
_CONNECTORS = frozenset({
    "Workload failed, see run output for details",
    "Driver stacktrace:",
    "Traceback (most recent call last):",
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
})


_URL_ONLY = re.compile(r"(?:https?|dbfs|abfss?|s3a?|gs)://\S+")
_LETTERS = re.compile(r"[A-Za-z]")


def root_line(excerpt: str, limit: int = 160) -> str:
    """The root cause in one line: the first line of an excerpt that says something — the line the
    email's ROOT CAUSE block shows first (the deepest cause, error class or exception). Lines of
    bare punctuation (``},``) and bare links are passed over."""
    for line in (excerpt or "").splitlines():
        s = line.strip()
        if len(_LETTERS.findall(s)) < 3 or _URL_ONLY.fullmatch(s):
            continue
        return s if len(s) <= limit else s[: limit - 1] + "…"
    return ""
