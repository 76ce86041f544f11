"""Command line: ``python -m shared <command> ...``.

``main(argv, env)`` returns an exit code; only ``shared/__main__.py`` calls ``sys.exit``.
Each command lives in ``shared/commands/<name>.py`` with ``register(subparsers)``, which adds
its parser and sets ``run(args, ctx) -> int``. Errors are one line on stderr
(``error: Type: message``); a traceback only with ``--debug``. ``--debug`` and ``--quiet`` are
accepted before or after the command (added to every sub-parser here). Shared options and
helpers (``-o/--output``, ``--out``, ``--timeout``, tables, the store line) are in
``shared/commands/common.py``; progress goes to ``ctx.progress`` (stderr, silenced by --quiet).

Run as a program (``python -m shared`` or the installed ``dbx-triage``), the settings come from
the environment and, for names the environment does not set, from the ``Values`` of a
``local.settings.json`` in the current folder, as ``func start`` would read them, then from a
Databricks configuration profile (DATABRICKS_CONFIG_PROFILE in DATABRICKS_CONFIG_FILE, default
the DEFAULT profile of ~/.databrickscfg) for the Databricks host and credentials.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from enum import IntEnum
from typing import IO, Any, Mapping, Sequence

from shared import __version__
from shared.errors import TriageError

__all__ = ["ExitCode", "Context", "main", "console", "local_settings", "COMMANDS"]


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1      # a runtime error, or some inputs could not be processed
    USAGE = 2      # the command line was wrong
    INTERRUPTED = 130


# shared/commands/<module>.py, in the order `--help` lists them.
COMMANDS = (
    "classify",
    "snapshot",
    "triage",
    "sweep",
    "decisions",
    "email_preview",
    "notify_preview",
    "feedback",
    "approve",
    "precedents",
    "report",
    "health",
    "export_finetune",
    "demo",
)


@dataclass
class Context:
    """What a command may touch: the environment (as a mapping) and the output streams."""

    env: Mapping[str, str]
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    quiet: bool = False                 # --quiet: no progress and no notes on stderr
    deadline: float | None = None       # time.monotonic() by which a --timeout command must end

    def progress(self, text: str) -> None:
        """A progress line on stderr (silenced by --quiet)."""
        if not self.quiet:
            from shared.redact import redact

            self.stderr.write(redact(text) + "\n")
            self.stderr.flush()

    def note(self, text: str) -> None:
        """A note for the operator on stderr, e.g. which store is used (silenced by --quiet)."""
        self.progress(text)

    def error(self, exc: BaseException | str) -> None:
        from shared.redact import redact   # an error may quote what a service answered

        if isinstance(exc, BaseException):
            self.stderr.write(redact(f"error: {type(exc).__name__}: {exc}") + "\n")
        else:
            self.stderr.write(redact(f"error: {exc}") + "\n")

    def traceback(self) -> None:
        """The traceback of the exception being handled, redacted, on stderr (``--debug``)."""
        from shared.redact import redact

        self.stderr.write(redact(traceback.format_exc()))

    def settings(self):
        from shared.config import Settings

        return Settings.from_env(self.env)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: exit 2 with a hint
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n(see '{self.prog} --help')\n")
        raise SystemExit(ExitCode.USAGE)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """A command (a parser without sub-commands of its own) reports a flag it does not know
        itself, with its own usage and the nearest flag it has, instead of leaving it to the top
        parser's generic usage."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and not any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            import difflib

            flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            unknown = next((e for e in extras if e.startswith("-")), extras[0])
            near = difflib.get_close_matches(unknown.split("=", 1)[0], flags, n=1, cutoff=0.75)
            hint = f" (did you mean {near[0]}?)" if near else ""
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed, extras


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--debug and --quiet; on a sub-parser they default to 'not given' so that an option given
    before the command is kept."""
    default: Any = False if top else argparse.SUPPRESS
    if not any("--debug" in a.option_strings for a in parser._actions):
        parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks on errors")
    if not any("--quiet" in a.option_strings for a in parser._actions):
        parser.add_argument("-q", "--quiet", action="store_true", default=default,
                            help="no progress or notes on stderr (errors still)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _add_global_options(child, top=False)


def build_parser(prog: str = "python -m shared") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Triage failed Databricks job runs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"shared.commands.{name}").register(sub)
    _add_global_options(parser, top=True)
    return parser


def local_settings(folder: str = ".") -> dict[str, str]:
    """The ``Values`` of ``local.settings.json`` in ``folder`` ({} when there is none). A file that
    cannot be read is a ConfigError naming it."""
    import json

    path = os.path.join(folder, "local.settings.json")
    if not os.path.isfile(path):
        return {}
    from shared.errors import ConfigError

    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable as JSON ({exc})") from None
    values = doc.get("Values") if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        return {}
    return {str(k): str(v) for k, v in values.items() if isinstance(v, (str, int, float, bool))}


_REPORTED_BY_THE_COMMAND = ("shared.app.sweep", "shared.app.worker")


def _configure_logging(ctx: Context, *, debug: bool) -> None:
    """Warnings (everything with --debug) to stderr, redacted; the Azure SDKs' chatter (e.g. every
    credential DefaultAzureCredential tried) only with --debug, so errors stay one line."""
    import logging

    from shared.redact import RedactingFilter

    handler = logging.StreamHandler(ctx.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_triage_cli", False)]:
        root.removeHandler(old)
    handler._triage_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    for noisy in ("azure", "urllib3", "httpx", "openai"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if not debug:
        # The command reports what these say itself (progress, the summary, the error line): their
        # log lines would say it a second time. Filtered on the CLI's handler only.
        handler.addFilter(lambda record: not record.name.startswith(_REPORTED_BY_THE_COMMAND))


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         stdout: IO[str] | None = None, stderr: IO[str] | None = None, prog: str = "python -m shared") -> int:
    ctx = Context(env={}, stdout=stdout or sys.stdout, stderr=stderr or sys.stderr)
    try:
        ctx.env = {**local_settings(), **os.environ} if env is None else dict(env)
        if env is None or ctx.env.get("DATABRICKS_CONFIG_FILE") or ctx.env.get("DATABRICKS_CONFIG_PROFILE"):
            from shared.databricks.auth import profile_settings

            ctx.env = {**profile_settings(ctx.env), **ctx.env}   # a ~/.databrickscfg profile, as the SDKs read it
    except TriageError as exc:
        ctx.error(exc)
        return ExitCode.USAGE
    parser = build_parser(prog)
    old_err = sys.stderr
    sys.stderr = ctx.stderr
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.stderr = old_err
    ctx.quiet = bool(getattr(args, "quiet", False))
    _configure_logging(ctx, debug=args.debug)
    try:
        return int(args.run(args, ctx))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing more to say
        return ExitCode.OK
    except TriageError as exc:
        if args.debug:
            ctx.traceback()
        ctx.error(exc)
        return ExitCode.ERROR
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        if args.debug:
            ctx.traceback()
        ctx.error(exc)
        return ExitCode.ERROR


def console() -> int:
    """The installed command (``dbx-triage``): ``python -m shared`` under its own name."""
    return main(prog=os.path.basename(sys.argv[0]) or "dbx-triage")
