"""Command line: ``python -m shared <command> ...``.

``main(argv, env)`` returns an exit code; only ``shared/__main__.py`` calls ``sys.exit``.
Each command lives in ``shared/commands/<name>.py`` with ``register(subparsers)``, which adds
its parser and sets ``run(args, ctx) -> int``. Errors are one line on stderr
(``error: Type: message``); a traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from enum import IntEnum
from typing import IO, Mapping, Sequence

from shared import __version__
from shared.errors import TriageError

__all__ = ["ExitCode", "Context", "main", "COMMANDS"]


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
    "feedback",
    "report",
    "export_finetune",
    "demo",
)


@dataclass
class Context:
    """What a command may touch: the environment (as a mapping) and the output streams."""

    env: Mapping[str, str]
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m shared", description="Triage failed Databricks job runs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"shared.commands.{name}").register(sub)
    return parser


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


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    ctx = Context(env=dict(os.environ if env is None else env),
                  stdout=stdout or sys.stdout, stderr=stderr or sys.stderr)
    parser = build_parser()
    old_err = sys.stderr
    sys.stderr = ctx.stderr
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.stderr = old_err
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
