"""What every command shares, so they all behave alike (the Databricks CLI's conventions):

- argument types that turn a bad value into a usage error (exit 2): ``positive_int``,
  ``non_negative_int``, ``duration_arg``, ``seconds_arg``, ``int_range(lo, hi)``;
- ``add_output(parser)``: ``-o/--output json|table`` (``--format`` kept as a hidden alias);
- ``add_out_file(parser)``: ``--out FILE`` for a command that writes a file;
- ``add_timeout(parser)``: ``--timeout SECONDS``, a deadline for the whole command, and
  ``retry_policy(args, ctx)``, the Databricks retry policy a command line should use (progress
  on retries, fail fast on a refused connection, the deadline);
- ``render_table(rows, columns)``: one table style (upper-case headers, control characters
  shown as '?', long cells cut), and ``shown(n, total)``: "100 of 600 shown";
- ``open_cli_store(ctx, write=...)``: the decision store, named on stderr; a read never creates it.

Progress and notes go to stderr through ``ctx.progress`` / ``ctx.note`` (silenced by --quiet);
data goes to stdout. ``--debug`` and ``--quiet`` are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from shared.config import parse_duration
from shared.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from shared.databricks import RetryPolicy
    from shared.store import Store

__all__ = [
    "OUTPUTS",
    "positive_int",
    "non_negative_int",
    "int_range",
    "duration_arg",
    "seconds_arg",
    "add_output",
    "note_deprecated",
    "add_out_file",
    "add_timeout",
    "retry_policy",
    "deadline_left",
    "render_table",
    "shown",
    "write_json",
    "open_cli_store",
    "describe_store",
]

OUTPUTS = ("table", "json")


# --- argument types: a bad value is a usage error (exit 2) ---------------------------------------

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} must be between {lo} and {hi}")
        return value

    parse.__name__ = f"int {lo}-{hi}"
    return parse


def duration_arg(text: str) -> int:
    """'90m', '24h', '7d' or seconds -> seconds (a usage error otherwise)."""
    try:
        return parse_duration(text, setting="duration")
    except ConfigError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (use e.g. 90m, 24h, 7d)") from None


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 seconds")
    return value


def _output_name(text: str) -> str:
    value = text.strip().lower()
    if value == "text":          # the old sweep --format text
        return "table"
    if value not in OUTPUTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of: json, table")
    return value


# --- common options ------------------------------------------------------------------------------

class _OutputOrFile(argparse.Action):
    """``-o json|table``; any other value is the old ``-o FILE`` (deprecated: ``--out FILE``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        text = str(values).strip()
        if text.lower() in (*OUTPUTS, "text"):
            setattr(namespace, "output", _output_name(text))
        else:
            setattr(namespace, "out", text)
            setattr(namespace, "deprecated_out", option_string)


def add_output(parser: argparse.ArgumentParser, *, default: str | None = "table", legacy_format: bool = True,
               file_alias: bool = False) -> None:
    """``-o/--output json|table``; ``--format`` stays as a hidden, deprecated alias. With
    ``file_alias`` (a command whose ``-o`` used to name a file) any other value of ``-o`` is
    taken as ``--out FILE`` and noted as deprecated (see ``note_deprecated``)."""
    help_text = f"output format (default {default})" if default else "output format"
    if file_alias:
        parser.add_argument("-o", "--output", dest="output", action=_OutputOrFile, default=default,
                            metavar="{json,table}", help=help_text + "; -o FILE is the old spelling of --out FILE")
    else:
        parser.add_argument("-o", "--output", dest="output", type=_output_name, default=default,
                            metavar="{json,table}", help=help_text)
    if legacy_format:
        parser.add_argument("--format", dest="output", type=_output_name, help=argparse.SUPPRESS)


def note_deprecated(args: argparse.Namespace, ctx: Any) -> None:
    """Tell the operator that ``-o FILE`` is now ``--out FILE`` (it still works)."""
    flag = getattr(args, "deprecated_out", None)
    if flag:
        ctx.note(f"note: {flag} FILE is deprecated, use --out FILE ({flag} now takes json or table)")


def add_out_file(parser: argparse.ArgumentParser, *, required: bool = False, help: str = "write to FILE",
                 aliases: Sequence[str] = ()) -> None:
    """``--out FILE`` (folders created by the command). ``aliases``: old spellings kept working."""
    parser.add_argument("--out", *aliases, dest="out", metavar="FILE", required=required, help=help)


def add_timeout(parser: argparse.ArgumentParser, *, default: float | None = None) -> None:
    parser.add_argument("--timeout", type=seconds_arg, default=default, metavar="SECONDS",
                        help="give up after this many seconds in all (default: "
                             + (f"{default:g}" if default else "each call retries for up to 60 s") + ")")


def deadline_left(ctx: Any) -> float | None:
    """Seconds left before the command's --timeout, or None when it has none."""
    at = getattr(ctx, "deadline", None)
    return None if at is None else at - time.monotonic()


def retry_policy(args: argparse.Namespace, ctx: Any, *, deadline_s: float = 60.0) -> "RetryPolicy":
    """How a command line talks to Databricks: retries announced on stderr, a refused connection
    fails at once (nobody is listening; the Functions path keeps its patient retries), and every
    call ends by the command's --timeout."""
    from shared.databricks import RetryPolicy

    timeout = getattr(args, "timeout", None)
    if timeout:
        ctx.deadline = time.monotonic() + float(timeout)
    return RetryPolicy(deadline_s=min(deadline_s, float(timeout)) if timeout else deadline_s,
                       until=getattr(ctx, "deadline", None), retry_refused=False, notify=ctx.progress)


# --- output --------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    """Control characters shown as '?' so a hostile value cannot garble the terminal."""
    text = "-" if value is None or value == "" else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def render_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *,
                 widths: Mapping[str, int] | None = None, headers: Mapping[str, str] | None = None) -> str:
    """A plain text table: UPPER_CASE headers (the column names unless ``headers`` says), a line
    of dashes, then the rows; cells cut to ``widths`` with '…'. Ends without a newline."""
    widths = widths or {}
    cells = []
    for row in rows:
        line = []
        for c in columns:
            text = _cell(row.get(c))
            limit = widths.get(c)
            if limit and len(text) > limit:
                text = text[: limit - 1] + "…"
            line.append(text)
        cells.append(line)
    names = [(headers or {}).get(c, c).upper() for c in columns]
    size = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    out = ["  ".join(n.ljust(size[i]) for i, n in enumerate(names)).rstrip(), "  ".join("-" * w for w in size)]
    out += ["  ".join(r[i].ljust(size[i]) for i in range(len(columns))).rstrip() for r in cells]
    return "\n".join(out)


def shown(count: int, total: int | None, what: str = "") -> str:
    """'100 of 600 shown' (or '3 shown' when the total is the count)."""
    noun = f" {what}" if what else ""
    if total is None or total <= count:
        return f"{count}{noun} shown"
    return f"{count} of {total}{noun} shown (use --limit to see more)"


def write_json(ctx: Any, data: Any) -> None:
    json.dump(data, ctx.stdout, indent=2, ensure_ascii=False, default=str)
    ctx.stdout.write("\n")


# --- the store ----------------------------------------------------------------------------------

def describe_store(settings: Any) -> str:
    """'SQLite file .triage/triage.db (default)' / 'Azure Table Storage at <endpoint> (TRIAGE_STORAGE)'."""
    from shared.store import storage_choice

    backend, value, setting = storage_choice(settings)
    if backend == "sqlite":
        origin = setting if (getattr(settings, "storage", "") or "").strip() else "default; set TRIAGE_STORAGE"
        return f"SQLite file {value} ({origin})"
    if backend == "tables-identity":
        return f"Azure Table Storage at {value.split('?')[0]} ({setting}, Entra ID)"
    lowered = value.lower()
    if "usedevelopmentstorage=true" in lowered:
        return f"Azurite, the local storage emulator ({setting})"
    account = endpoint = ""
    for part in value.split(";"):
        k, _, v = part.partition("=")
        if k.strip().lower() == "accountname":
            account = v.strip()
        elif k.strip().lower() == "tableendpoint":
            endpoint = v.strip().split("?")[0]
    return (f"Azure Table Storage account {account or '(from the connection string)'}"
            + (f" at {endpoint}" if endpoint else "") + f" ({setting})")


def open_cli_store(ctx: Any, *, write: bool, settings: Any = None) -> "Store":
    """The decision store for a command, named on stderr (one line). A read command (``write``
    False) never creates it: a store that does not exist is an error naming it."""
    from shared.store import open_store

    settings = settings or ctx.settings()
    ctx.note(f"store: {describe_store(settings)}")
    if write:
        return open_store(settings)
    return open_store(settings, check=False, must_exist=True)
