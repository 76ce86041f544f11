"""Cold start: ``import function_app`` against a bare ``import azure.functions``, side by side.

Each measurement is a fresh Python process (nothing cached in memory; byte code warm on disk, as
on a deployed app) that times one import with ``time.perf_counter``; the two kinds alternate
(order swapped every round) so that machine noise hits both alike. The figure is the ratio of
the medians; the target is at most 1.5x (importing the app adds only its own small modules:
every cloud SDK is imported when a function first needs it).

Run: ``make bench`` (or ``.venv/bin/python -m benchmarks.cold_start [--rounds N]``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5
_PROBE = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
_HEAVY = ("openai", "azure.identity", "azure.data.tables", "azure.storage.queue", "requests")


def _import_seconds(module: str) -> tuple[float, float]:
    """(import time, whole process time) of one fresh interpreter importing ``module``."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def _heavy_modules_loaded() -> list[str]:
    code = ("import sys, function_app; h = %r; "
            "print(','.join(m for m in sys.modules if m in h or m.startswith(tuple(x + '.' for x in h))))" % (_HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def measure(rounds: int = 15) -> dict[str, float]:
    for module in ("azure.functions", "function_app"):   # warm the byte-code cache, not counted
        _import_seconds(module)
    bare, app, bare_wall, app_wall = [], [], [], []
    for i in range(rounds):
        order = ("azure.functions", "function_app") if i % 2 == 0 else ("function_app", "azure.functions")
        for module in order:
            t, wall = _import_seconds(module)
            (bare if module == "azure.functions" else app).append(t)
            (bare_wall if module == "azure.functions" else app_wall).append(wall)
    result = {
        "rounds": rounds,
        "azure_functions_ms": statistics.median(bare) * 1000,
        "function_app_ms": statistics.median(app) * 1000,
        "azure_functions_process_ms": statistics.median(bare_wall) * 1000,
        "function_app_process_ms": statistics.median(app_wall) * 1000,
    }
    result["ratio"] = result["function_app_ms"] / result["azure_functions_ms"]
    result["process_ratio"] = result["function_app_process_ms"] / result["azure_functions_process_ms"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start")
    parser.add_argument("--rounds", type=int, default=15, help="fresh processes per kind (default 15)")
    args = parser.parse_args([] if argv is None else argv)
    r = measure(args.rounds)
    heavy = _heavy_modules_loaded()
    print(f"median of {r['rounds']} fresh processes each (byte code cached):")
    for label, key in (("import azure.functions", "azure_functions"), ("import function_app", "function_app")):
        print(f"  {label:24} {r[key + '_ms']:7.1f} ms   (whole process {r[key + '_process_ms']:.0f} ms)")
    verdict = "within" if r["ratio"] <= TARGET else "OVER"
    print(f"  ratio {r['ratio']:.2f}x (whole process {r['process_ratio']:.2f}x): {verdict} the {TARGET}x target")
    print(f"  cloud SDKs loaded by importing function_app: {', '.join(heavy) if heavy else 'none'}")
    return 0 if r["ratio"] <= TARGET and not heavy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
