"""Error fingerprints: the same failure gets the same short hash, whatever its ids and times.

``normalise(text)`` replaces the parts of an error that change from one occurrence to the next
with placeholders — URLs ``<url>``, e-mail addresses ``<email>``, UUIDs ``<uuid>``, timestamps
``<ts>``, IP addresses ``<ip>``, file paths ``<path>``, quoted literals ``<str>``, hex ids
``<hex>`` and numbers ``<n>`` — drops Java stack frames (``at a.b.C.m(C.java:12)``), and
collapses white space. What identifies a failure is kept: exception names, Spark/Delta error
classes, SQLSTATEs, quoted UPPER_CASE error codes, and the numbers that carry meaning (HTTP
status, exit code, errno, signal: ``exit code 137`` stays ``exit code 137``).

``fingerprint(text, category=...)`` hashes the normalised text (and the category, when given)
to 16 hex characters. It keys the LLM verdict cache, the "this keeps failing the same way"
history, and email de-duplication. ``NORMALISER_VERSION`` is part of the hash: changing the
normalisation changes every fingerprint (old cache entries simply stop matching).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["NORMALISER_VERSION", "normalise", "fingerprint"]

NORMALISER_VERSION = 1
_HEAD, _TAIL = 3000, 1000   # a long trace is fingerprinted by its head and its tail (the root cause)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_JAVA_FRAME = re.compile(r"(?m)^[ \t]*at [\w$.<>/\[\]]{1,500}\([^)\n]{0,500}\)[ \t]*$\n?")
_MORE_FRAMES = re.compile(r"(?m)^[ \t]*\.\.\. \d+ more[ \t]*$\n?")

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]{0,6}"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]{0,6}"

_STEPS: tuple[tuple[re.Pattern[str], str], ...] = (
    # URLs and URIs (abfss://, https://, jdbc:sqlserver://, dbfs:/...)
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{0,15}:(?:[a-z]{2,12}:)?//[^\s\"'<>`)\]}]{1,2048}"), "<url>"),
    (re.compile(r"\b(?:dbfs|file|hdfs):/[^\s\"'<>`)\]}]{0,2048}"), "<path>"),
    # e-mail addresses (owners, service principals)
    (re.compile(r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){1,8}\b"), "<email>"),
    # UUIDs
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    # timestamps: ISO 8601, RFC 1123, Java Date.toString, log4j 'yy/MM/dd HH:mm:ss', bare times
    (re.compile(r"\b\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d{1,9})?)?(?:Z|[+-]\d\d:?\d\d)?)?\b"), "<ts>"),
    (re.compile(r"\b" + _DAY + r",? \d{1,2} " + _MONTH + r" \d{4} \d\d:\d\d:\d\d(?: ?(?:GMT|UTC|Z))?"), "<ts>"),
    (re.compile(r"\b" + _DAY + r" " + _MONTH + r" {1,2}\d{1,2} \d\d:\d\d:\d\d(?: [A-Z]{2,5})? \d{4}\b"), "<ts>"),
    (re.compile(r"\b\d\d/\d\d/\d\d(?:\d\d)?(?:[ T]\d\d:\d\d:\d\d)?\b"), "<ts>"),
    (re.compile(r"\b\d{1,2}:\d\d:\d\d(?:[.,]\d{1,9})?\b"), "<ts>"),
    # IP addresses (v4 with an optional port, v6)
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    # file paths: Unix (two segments or more) and Windows
    (re.compile(r"(?<![\w.\-/])/(?:[\w.\-$@+=~%]{1,255}/){1,64}[\w.\-$@+=~%]{0,255}"), "<path>"),
    (re.compile(r"\b[A-Za-z]:\\(?:[^\\\s\"'<>|]{1,255}\\){0,64}[^\\\s\"'<>|]{0,255}"), "<path>"),
)

# Quoted literals: '...', "..." and `...` (table names, column names, values, keys).
_QUOTED = re.compile(r"(?<![A-Za-z0-9])(?:'([^'\n]{0,300})'|\"([^\"\n]{0,300})\"|`([^`\n]{0,300})`)(?![A-Za-z0-9])")
# ... except those that identify the failure: ERROR_CODES and exception class names.
_KEEP_QUOTED = re.compile(r"[A-Z][A-Z0-9_.]{2,80}|(?:[\w$]{1,80}\.){0,12}[\w$]{0,80}(?:Exception|Error)")

_HEX = re.compile(r"\b0x[0-9a-fA-F]{1,64}\b|(?<![A-Za-z0-9])(?=[a-fA-F]{0,63}\d)(?=[0-9]{0,63}[a-fA-F])[0-9a-fA-F]{8,64}(?![A-Za-z0-9])")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
# Numbers that carry meaning stay: HTTP status, exit code, errno, signal, SQLSTATE.
_KEEP_NUMBER_AFTER = re.compile(
    r"(?i)(?:\bstatus(?:[ _]?code)?|\bhttp(?:/\d(?:\.\d)?)?|\berror[ _]?code|\bexit(?:[ _]?(?:code|status|value))?|"
    r"\berrno|\bsignal|\breturn[ _]?code|\bstatuscode|\bresponse[ _]?code|\bcode)\W{0,3}$"
)
_SQLSTATE_BEFORE = re.compile(r"(?i)\bSQLSTATE\W{0,3}[0-9A-Z]{0,4}$")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _quoted(m: re.Match[str]) -> str:
    inner = next(g for g in m.groups() if g is not None)
    if _KEEP_QUOTED.fullmatch(inner):
        return m.group(0)
    return "<str>"


def _number(m: re.Match[str]) -> str:
    before = m.string[max(0, m.start() - 24):m.start()]
    if len(m.group(0)) <= 5 and (_KEEP_NUMBER_AFTER.search(before) or _SQLSTATE_BEFORE.search(before)):
        return m.group(0)
    if _SQLSTATE_BEFORE.search(before):
        return m.group(0)
    return "<n>"


def normalise(text: str) -> str:
    """The error text with its volatile parts replaced by placeholders (see the module doc)."""
    if not text:
        return ""
    t = _ANSI.sub("", str(text))
    t = _JAVA_FRAME.sub("", t)
    t = _MORE_FRAMES.sub("", t)
    for pattern, repl in _STEPS:
        t = pattern.sub(repl, t)
    t = _QUOTED.sub(_quoted, t)
    t = _HEX.sub("<hex>", t)
    t = _NUMBER.sub(_number, t)
    t = _SPACE.sub(" ", t)
    t = "\n".join(line.strip() for line in t.split("\n"))
    t = _BLANK_LINES.sub("\n", t)
    return t.strip()


def fingerprint(text: str, *, category: str | None = None) -> str:
    """A stable 16-hex-character hash of the normalised root-cause text (and category)."""
    if text and len(text) > 200_000:  # normalising is linear, but a head and a tail are all we keep
        text = text[:120_000] + "\n" + text[-60_000:]
    norm = normalise(text)
    if len(norm) > _HEAD + _TAIL:
        norm = norm[:_HEAD] + "\n...\n" + norm[-_TAIL:]
    cat = str(getattr(category, "value", category) or "")
    payload = f"v{NORMALISER_VERSION}\n{cat}\n{norm}".encode("utf-8", "replace")
    return hashlib.sha256(payload).hexdigest()[:16]
