"""``python -m shared demo``: the local demo, which lives beside the package in ``demo/`` (it is not
deployed: it carries a stand-in Databricks workspace). From a clone this runs ``python -m demo``;
in a deployed app it says where the demo is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["register", "run"]

_REPO = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the bundled examples against a local fake workspace")
    p.add_argument("--examples", default=str(_REPO / "examples"), help="folder of snapshots to serve")
    p.add_argument("--out", default="demo-out", help="where the store and email previews go")
    p.set_defaults(run=run)


def run(args, ctx) -> int:
    if not (_REPO / "demo" / "__main__.py").is_file():
        ctx.error("the demo ships with the source repository, not with the deployed app: run `make demo` in a clone")
        return 1
    env = dict(ctx.env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    inherit = ctx.stdout is sys.stdout and ctx.stderr is sys.stderr
    done = subprocess.run([sys.executable, "-m", "demo", "--examples", args.examples, "--out", args.out],
                          env=env, capture_output=not inherit, text=True)
    if not inherit:
        ctx.stdout.write(done.stdout or "")
        ctx.stderr.write(done.stderr or "")
    return done.returncode
