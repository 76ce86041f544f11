"""Model calls per 100 failures on a replayed stream with repetition, and prompt size, beside
the naive design that asks the model about every failure.

The stream: 100 failures drawn from 14 jobs. Eight jobs fail in ways the rules know
(dev-corpus failures); six fail with application errors no rule knows (the long tail the model
is for), each time with new ids, counts and timestamps in the text. The model is a local fake
OpenAI-compatible server over real HTTP; the store is SQLite (cache and hourly budget live there).
Also: the dev corpus decided with the model switched on, to show the model costs no accuracy.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "dev"

KNOWN = ["dev-006", "dev-015", "dev-043", "dev-055", "dev-058", "dev-065", "dev-069", "dev-027"]
UNKNOWN_TEMPLATES = [
    "com.acme.quality.QualityGateFailed: row count {n} below threshold {m} for batch {ts}",
    "pipeline stage 'enrich' reported status 3 for partition date={day} (attempt {m})",
    "Great Expectations suite orders_suite failed: {n} of {m} expectations unmet in run {uuid}",
    "org.acme.sap.ExtractFailed: RFC call Z_READ_TABLE aborted in session {hex} after {n} rows",
    "Custom validation: customer feed {uuid} has {n} rows flagged by the fraud screen",
    "Vendor file {day}_{n}.csv rejected by the landing checker (checksum {hex})",
]


def _unknown_text(i: int, rng: random.Random) -> str:
    return UNKNOWN_TEMPLATES[i].format(
        n=rng.randint(1, 99999), m=rng.randint(1, 99999), ts=f"2026-11-{rng.randint(1, 28):02d}T0{rng.randint(0, 9)}:00:00Z",
        day=f"2026-11-{rng.randint(1, 28):02d}", uuid="%08x-%04x-4%03x-a%03x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 12, 12, 48)),
        hex="%016x" % rng.getrandbits(64))


def _stream(rng: random.Random):
    from tests.helpers import make_snapshot

    from shared.snapshot import load_snapshot, parse_snapshot

    events = []
    for k in range(100):
        if rng.random() < 0.6:
            case = rng.choice(KNOWN)
            doc = load_snapshot(CORPUS / f"{case}.json").to_json()
            doc["run"] = {**doc["run"], "run_id": 10_000 + k}
            events.append(("known", parse_snapshot(doc)))
        else:
            i = min(int(rng.expovariate(0.6)), len(UNKNOWN_TEMPLATES) - 1)  # a few jobs fail most often
            snap = make_snapshot(_unknown_text(i, rng))
            doc = snap.to_json()
            doc["run"] = {**doc["run"], "run_id": 20_000 + k, "job_id": 900 + i}
            doc["job"] = {**doc["job"], "job_id": 900 + i}
            events.append(("unknown", parse_snapshot(doc)))
    return events


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fakes.openai_server import FakeOpenAI

    from shared.config import Settings
    from shared.llm import estimate_tokens
    from shared.snapshot import load_snapshot
    from shared.store import open_store
    from shared.triage import decide

    rng = random.Random(7)
    events = _stream(rng)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as fake:
        fake.default = {**fake.default, "category": "DATA", "is_transient": False,
                        "recommended_action": "SEND_EMAIL", "confidence": 0.8,
                        "root_cause": "An application data check rejected the batch."}
        settings = Settings.from_env({"OPENAI_BASE_URL": f"{fake.url}/v1", "OPENAI_API_KEY": "fake-api-key",
                                      "OPENAI_MODEL": "gpt-test", "TRIAGE_STORAGE": f"sqlite:///{tmp}/llm.db",
                                      "TRIAGE_LLM_MAX_CALLS_PER_HOUR": "1000"})
        with open_store(settings) as store:
            unsure = 0
            for kind, snap in events:
                d = decide(snap, settings, store=store)
                unsure += bool(d.llm)
            calls = fake.calls
            prompts = [estimate_tokens(r.system_message) + estimate_tokens(r.user_message) for r in fake.requests]
            print(f"replayed stream: {len(events)} failures ({sum(k == 'unknown' for k, _ in events)} the rules "
                  f"do not know, {len({s.job_id for _, s in events})} jobs)")
            print(f"model calls: {calls} per 100 failures (naive design: {len(events)}); "
                  f"decisions that consulted the model or its cache: {unsure}")
            if prompts:
                print(f"prompt size: mean {sum(prompts) / len(prompts):.0f} estimated tokens per call "
                      f"(budget {settings.llm_max_prompt_tokens}); max {max(prompts)}")

            # The dev corpus with the model switched on: it is asked only when the rules are unsure.
            before = fake.calls
            correct = total = 0
            for path in sorted(CORPUS.glob("*.json")):
                exp = json.loads(path.read_text())["expected"]["action"]
                d = decide(load_snapshot(path), settings, store=store)
                total += 1
                correct += d.action.value == exp
            print(f"dev corpus with the model on: action accuracy {correct}/{total}; "
                  f"model calls {fake.calls - before}")


if __name__ == "__main__":
    main()
