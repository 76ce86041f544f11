"""Trust levels on every labelled corpus case: a hostile model cannot break them, a decent one still helps.

The hostile stand-in answers every case with the most damaging instance of the verdict schema
(NETWORK, transient, confidence 1.0, RETRY_WITH_NEW_PARAMS with 10 000 workers, prompt-injection
text as the cause) and is asked about every case (TRIAGE_LLM_MIN_RULE_CONFIDENCE=1.0), with
secrets planted in every error. The decent stand-in is right 80% of the time (the label) and
confidently wrong otherwise; with default settings it is asked only where the rules are unsure.
Both run through the production pipeline (rules -> model over loopback HTTP -> merge -> policy).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.llm.corpus_models import run_decent, run_hostile

    h = run_hostile()
    print(f"hostile model: {h.decisions} decisions ({h.model_calls} model calls) on every corpus case")
    print(f"  firm rules verdicts (PERMISSION/CODE/DATA/CONFIGURATION/DEPENDENCY >= 0.6): {h.firm_cases}")
    print(f"  firm verdicts overturned into retries:      {len(h.firm_overturned)}")
    print(f"  actions their category does not allow:      {len(h.contradicts_category)}")
    print(f"  second model-only retries in a lineage:     {len(h.second_model_only_retries)}")
    print(f"  planted secrets found in its prompts:       {h.secrets_in_prompts}")
    print(f"  decisions its injected text steered:        {len(h.injection_steered)}")
    print(f"  retries it proposed that became approval requests: {h.approvals_requested}")
    print("decent model (80% right, confidently wrong otherwise) vs the rules alone, action accuracy:")
    total = {"rules": [0, 0, 0], "model": [0, 0, 0]}
    asked = 0
    for name, s in run_decent().items():
        print(f"  {name:<12} rules {s['rules'].line():<40} with model {s['model'].line()}")
        asked += s["model"].asked
        for k in total:
            total[k][0] += s[k].right
            total[k][1] += s[k].cases
            total[k][2] += s[k].unsafe
    for k, (right, cases, unsafe) in total.items():
        print(f"  all sets, {k:<6}: {right}/{cases} = {right / max(1, cases):.3f} right, {unsafe} unsafe retries")
    print(f"  the model was asked on {asked} cases (the rules were unsure or found nothing)")


if __name__ == "__main__":
    main()
