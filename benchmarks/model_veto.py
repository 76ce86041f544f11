"""The model as a second opinion on retries: unsafe retries with and without it, and what it costs.

Every labelled corpus case (dev and every blind validation set) is decided three ways:

- rules alone (``use_llm=False``);
- rules + model as today's ``consult`` uses it (asked only when the rules are unsure), no veto;
- the whole pipeline: rules + model + the model's veto on retries that rest on less than firm
  evidence (``shared.llm.veto``).

The model is a stand-in that is right 80% of the time and confidently wrong otherwise (which 20%
is fixed per case by a hash of its id, so the figures repeat): right = the labelled category, its
transience and action; wrong = the opposite side of the line — "transient, retry" (confidence 0.9)
for a failure a person must fix, "CODE, not transient" for a transient one. An unsafe retry is a
RETRY or RETRY_WITH_NEW_PARAMS where the label says SEND_EMAIL, ESCALATE or IGNORE. Calls are
real ``analyse`` calls (cache misses), per 100 failures; the store (SQLite) holds the cache and
the hourly budget as in production.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
UNSAFE = {"SEND_EMAIL", "IGNORE", "ESCALATE"}
RIGHT_SHARE = 80   # percent


class StandInModel:
    """An ``LLMBackend`` that answers from the case's label: right for RIGHT_SHARE% of cases."""

    name = "stand-in"
    model = "right-80"

    def __init__(self) -> None:
        self.label: dict = {}
        self.case = ""
        self.calls = 0

    def right(self) -> bool:
        return int(hashlib.sha256(self.case.encode()).hexdigest(), 16) % 100 < RIGHT_SHARE

    def analyse(self, request):
        from shared.llm.schema import Verdict
        from shared.models import DEFAULT_ACTION, TRANSIENT, Action, Category

        self.calls += 1
        cat = Category(self.label["category"])
        retry = self.label["action"].startswith("RETRY")
        transient = cat in TRANSIENT or retry
        if self.right():
            action = Action(self.label["action"]) if self.label["action"] not in ("ESCALATE", "IGNORE") \
                else DEFAULT_ACTION[cat]
            return Verdict(ok=True, category=cat, confidence=0.85, is_transient=transient,
                           root_cause=f"(stand-in, right) {cat.value}", recommended_action=action,
                           backend=self.name, model=self.model)
        if transient:
            return Verdict(ok=True, category=Category.CODE, confidence=0.9, is_transient=False,
                           root_cause="(stand-in, wrong) a bug in the job's code", recommended_action=Action.SEND_EMAIL,
                           backend=self.name, model=self.model)
        return Verdict(ok=True, category=Category.NETWORK, confidence=0.9, is_transient=True,
                       root_cause="(stand-in, wrong) a passing network error", recommended_action=Action.RETRY,
                       backend=self.name, model=self.model)

    def close(self) -> None:
        pass


def _without_veto(snapshot, settings, store, backend):
    """shared.triage.decide up to the policy, without the veto step (the comparison)."""
    from shared import llm as llm_mod
    from shared.decide.classify import classify
    from shared.decide.fingerprint import fingerprint
    from shared.decide.policy import decide as rules_decide
    from shared.decide.policy import enforce
    from shared.redact import redact

    c = classify(snapshot)
    d = rules_decide(snapshot, c, settings)
    d.excerpt = redact(d.excerpt)
    d.fingerprint = fingerprint(d.excerpt, category=d.category.value)
    d = llm_mod.consult(snapshot, c, d, settings, store=store, backend=backend)
    return enforce(d, snapshot, c, settings)


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from shared.config import Settings
    from shared.snapshot import load_snapshot
    from shared.store import open_store
    from shared.triage import decide

    folders = [CORPUS / "dev", *sorted(p for p in CORPUS.glob("validation*") if p.is_dir())]
    rows = []
    totals = {"n": 0}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "unused",
                                      "OPENAI_MODEL": "stand-in", "TRIAGE_STORAGE": f"sqlite:///{tmp}/veto.db",
                                      "TRIAGE_LLM_MAX_CALLS_PER_HOUR": "100000"})
        plain = Settings()
        for folder in folders:
            stats = {k: 0 for k in ("n", "ok_rules", "unsafe_rules", "ok_consult", "unsafe_consult", "ok_veto",
                                    "unsafe_veto", "calls_consult", "calls_veto", "vetoed_right", "vetoed_wrong")}
            for mode in ("consult", "veto"):
                backend = StandInModel()
                with open_store(replace(settings, storage=f"sqlite:///{tmp}/{folder.name}-{mode}.db")) as store:
                    for path in sorted(folder.glob("*.json")):
                        label = json.loads(path.read_text())["expected"]
                        backend.label, backend.case = label, path.stem
                        snap = load_snapshot(path)
                        if mode == "consult":
                            d = _without_veto(snap, settings, store, backend)
                        else:
                            d = decide(snap, settings, store=store, llm=backend)
                            if "llm-veto" in d.decided_by:
                                stats["vetoed_right" if label["action"] in UNSAFE else "vetoed_wrong"] += 1
                        stats[f"ok_{mode}"] += d.action.value == label["action"]
                        stats[f"unsafe_{mode}"] += d.action.is_retry and label["action"] in UNSAFE
                stats[f"calls_{mode}"] = backend.calls
            for path in sorted(folder.glob("*.json")):
                label = json.loads(path.read_text())["expected"]
                d = decide(load_snapshot(path), plain, use_llm=False)
                stats["n"] += 1
                stats["ok_rules"] += d.action.value == label["action"]
                stats["unsafe_rules"] += d.action.is_retry and label["action"] in UNSAFE
            rows.append((folder.name, stats))
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v

    print(f"stand-in model right {RIGHT_SHARE}% of the time, confidently wrong otherwise")
    print(f"{'corpus':<13}{'n':>5}  {'rules alone':>16}  {'+ model (consult)':>18}  {'+ model + veto':>16}  "
          f"{'calls/100':>10}  {'vetoes right/wrong':>18}")

    def line(name, s):
        n = s["n"]
        print(f"{name:<13}{n:>5}  {s['ok_rules']:>4}/{n:<4} {s['unsafe_rules']:>2} uns  "
              f"{s['ok_consult']:>5}/{n:<4} {s['unsafe_consult']:>2} uns  {s['ok_veto']:>4}/{n:<4} {s['unsafe_veto']:>2} uns  "
              f"{100 * s['calls_veto'] / n:>9.1f}  {s['vetoed_right']:>8}/{s['vetoed_wrong']:<8}")

    for name, s in rows:
        line(name, s)
    line("all", totals)
    n = totals["n"]
    print(f"model calls per 100 failures: {100 * totals['calls_consult'] / n:.1f} (consult only), "
          f"{100 * totals['calls_veto'] / n:.1f} (consult + second opinion on retries)")
    print(f"unsafe retries over {n} failures: rules {totals['unsafe_rules']}, + model {totals['unsafe_consult']}, "
          f"+ model + veto {totals['unsafe_veto']}")


if __name__ == "__main__":
    main()
