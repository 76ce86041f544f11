"""``make bench``: every benchmark in this folder, figures printed with what they mean."""

import importlib
import sys
import time

BENCHMARKS = ("classifier", "api_calls", "llm_calls", "model_veto", "trust", "lineage_replay", "cold_start", "cost")


def main() -> int:
    failed = 0
    for name in BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n=== {name}: {module.__doc__.strip().splitlines()[0]}")
        start = time.perf_counter()
        try:
            module.main()
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            failed += 1
            print(f"benchmark {name} failed: {type(exc).__name__}: {exc}")
        print(f"({name} took {time.perf_counter() - start:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
