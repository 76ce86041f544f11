"""`pip install .` gives the operator a `dbx-triage` command equal to `python -m shared`.

The wheel is built here from a copy of the sources with setuptools' own build backend (no
network, no build isolation), and checked: it holds the package `shared` and nothing else of the
repository (no tests, demo or infra), declares the console script, its dependencies are
requirements.txt's, and its version is the package's."""

from __future__ import annotations

import configparser
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from shared import __version__
from shared.cli import console, main

ROOT = Path(__file__).resolve().parents[1]


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "shared", src / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    for extra in ("tests", "demo", "blueprints"):         # present beside it, as in a clone: must stay out
        (src / extra).mkdir()
        (src / extra / "__init__.py").write_text("")
    out = tmp_path / "dist"
    code = ("import sys; from setuptools import build_meta as b; "
            f"print(b.build_wheel({str(out)!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return out / done.stdout.strip().splitlines()[-1]


def test_the_wheel_installs_the_dbx_triage_command(tmp_path):
    wheel = _build_wheel(tmp_path)
    assert wheel.name.startswith(f"databricks_triage-{__version__}-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(zf.read(info).decode())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert dict(entry_points["console_scripts"]) == {"dbx-triage": "shared.cli:console"}
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"shared"}
    assert "shared/cli.py" in names and "shared/commands/common.py" in names and "shared/databricks/auth.py" in names
    requires = {line.split(":", 1)[1].strip().split(";")[0].split(">")[0].split("<")[0].strip()
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert {"azure-functions", "azure-identity", "azure-data-tables", "requests"} <= requires


def test_console_entry_point_is_the_cli_under_its_own_name(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["dbx-triage", "--version"])
    assert console() == 0
    assert capsys.readouterr().out.strip() == f"dbx-triage {__version__}"
    err = io.StringIO()
    assert main(["decisions", "list", "--limit", "-1"], env={}, stderr=err, prog="dbx-triage") == 2
    assert err.getvalue().startswith("usage: dbx-triage decisions list")


def test_installed_command_runs_from_any_folder(tmp_path):
    wheel = _build_wheel(tmp_path)
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    script = target / "bin" / "dbx-triage"
    assert script.is_file()
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    done = subprocess.run([str(script), "decisions", "list"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "store: SQLite file .triage/triage.db (default; set TRIAGE_STORAGE)" in done.stderr
    assert "StoreMissing" in done.stderr and not (elsewhere / ".triage").exists()
    done = subprocess.run([str(script), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("usage: dbx-triage ")
