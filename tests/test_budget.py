"""One budget for reruns and the model: the estimate a decision records, the caps that stop a rerun
(the app's TRIAGE_BUDGET_USD_PER_DAY, a job's tag triage.budget_usd_per_day), the spend counted once
when a rerun starts, and the model skipped once its share is spent. Fake workspace over real HTTP,
SQLite store, the production pipeline."""

from pathlib import Path

import pytest

from shared.config import Settings
from shared.decide.budget import Prices, over_budget, rerun_estimate
from shared.errors import ConfigError
from shared.snapshot import parse_snapshot
from shared.store.spend import add_spend, day_of, spent, today
from shared.triage import act_due, triage_run
from tests.helpers import corpus_doc


def _load(fake, case, **tags):
    doc = corpus_doc(case)
    doc.pop("history", None)
    if tags:
        doc.setdefault("job", {"job_id": doc["run"]["job_id"], "settings": {}})
        doc["job"].setdefault("settings", {}).setdefault("tags", {}).update(tags)
    return fake.load(doc)


def test_with_a_one_cent_budget_a_resized_rerun_is_not_started_and_the_decision_says_why(
        fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-055")          # RESOURCE: a resized rerun (runs/submit)
    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "0.01"})
    record = triage_run(run_id, settings, client=client, store=store, act_now=True).record
    assert fake_databricks.writes == []                  # nothing started
    assert record.action == "SEND_EMAIL" and record.status == "acted"
    assert "Not retried" in record.reason and "TRIAGE_BUDGET_USD_PER_DAY $0.01" in record.reason
    cost = record.decision["cost"]
    assert cost["stopped_by"] == "app" and cost["rerun"]["usd"] > 0.01
    assert f"${cost['rerun']['usd']:.2f}" in record.reason          # what the rerun would have cost
    assert any("budget" in n for n in record.decision["notes"])
    assert today(store)["total_usd"] == 0                 # nothing was spent


def test_within_the_budget_the_rerun_starts_and_its_estimate_is_counted_once(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-055")
    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "5"})
    record = triage_run(run_id, settings, client=client, store=store, act_now=True).record
    assert record.action == "RETRY_WITH_NEW_PARAMS" and record.status == "acted"
    assert len(fake_databricks.requests_to("runs/submit")) == 1
    usd = record.decision["cost"]["rerun"]["usd"]
    assert today(store)["total_usd"] == pytest.approx(usd, abs=1e-5)
    assert spent(store, day=day_of(), job_id=record.job_id) == pytest.approx(usd, abs=1e-5)
    again = triage_run(run_id, settings, client=client, store=store, act_now=True)     # a duplicate delivery
    assert again.duplicate and today(store)["total_usd"] == pytest.approx(usd, abs=1e-5)


def test_a_job_tag_caps_one_job_and_the_reason_names_it(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043", **{"triage.budget_usd_per_day": "0"})     # TIMEOUT: a repair
    settings = Settings.from_env({"TRIAGE_MODE": "act"})
    record = triage_run(run_id, settings, client=client, store=store, act_now=True).record
    assert record.action == "SEND_EMAIL" and fake_databricks.writes == []
    assert "triage.budget_usd_per_day" in record.reason and record.decision["cost"]["stopped_by"] == "job"


def test_spend_counted_earlier_in_the_day_stops_a_due_rerun(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-065")             # a retry that waits out a back-off
    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "1"})
    record = triage_run(run_id, settings, client=client, store=store).record
    assert record.status == "decided" and record.action == "RETRY"
    add_spend(store, 0.9999, day=day_of())                 # other reruns used the day's budget meanwhile
    [done] = act_due(settings, client=client, store=store, now=record.not_before + 1)
    assert done.action == "SEND_EMAIL" and "daily budget" in done.reason
    assert fake_databricks.writes == []


def test_shadow_mode_records_the_estimate_and_spends_nothing(fake_databricks, client, store):
    run_id = _load(fake_databricks, "dev-043")
    record = triage_run(run_id, Settings.from_env({"TRIAGE_BUDGET_USD_PER_DAY": "100"}), client=client,
                        store=store).record
    assert record.mode == "shadow" and record.action == "RETRY"
    assert record.decision["cost"]["rerun"]["usd"] > 0 and "stopped_by" not in record.decision["cost"]
    assert today(store)["total_usd"] == 0


def _snap(run_extra=None, **cluster):
    spec = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 2, **cluster}
    run = {"run_id": 1, "job_id": 7, "start_time": 1_000, "end_time": 3_601_000,
           "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
           "tasks": [{"task_key": "t", "run_id": 11, "job_cluster_key": "c",
                      "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}],
           "job_clusters": [{"job_cluster_key": "c", "new_cluster": spec}], **(run_extra or {})}
    return parse_snapshot({"run": run})


def test_estimate_arithmetic_nodes_rates_and_price():
    prices = Prices(dbu_price_usd=0.5)
    est = rerun_estimate(_snap(), [], prices)                        # 1 h x (2 workers + driver) x 0.75 DBU/h
    assert est.dbu == pytest.approx(2.25) and est.usd == pytest.approx(1.125)
    auto = rerun_estimate(_snap(num_workers=None, autoscale={"min_workers": 1, "max_workers": 8}), [], prices)
    assert auto.dbu == pytest.approx(9 * 0.75)                       # an autoscaling cluster at its maximum
    vcpus = rerun_estimate(_snap(node_type_id="Standard_E32ds_v5", num_workers=0), [], prices)
    assert vcpus.dbu == pytest.approx(32 * 0.1875) and "vCPUs" in vcpus.basis
    bigger = {"body": {"tasks": [{"new_cluster": {"node_type_id": "Standard_DS3_v2", "num_workers": 4}}]}}
    assert rerun_estimate(_snap(), [bigger], prices).dbu == pytest.approx(3.75)   # the plan's cluster


def test_estimate_serverless_by_performance_target():
    run = {"run_id": 2, "start_time": 1_000, "end_time": 1_801_000, "performance_target": "PERFORMANCE_OPTIMIZED",
           "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
           "tasks": [{"task_key": "t", "run_id": 21, "environment_key": "default",
                      "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}]}
    est = rerun_estimate(parse_snapshot({"run": run}), [], Prices())
    assert est.dbu == pytest.approx(8.0 * 0.5) and est.usd == pytest.approx(4.0 * 0.45)
    assert "PERFORMANCE_OPTIMIZED" in est.basis


def test_over_budget_names_the_cap_that_stops_it():
    assert over_budget(0.5, app_spent=0, app_cap=1, job_spent=0, job_cap_usd=None) == ""
    assert "TRIAGE_BUDGET_USD_PER_DAY" in over_budget(0.5, app_spent=0.6, app_cap=1, job_spent=0, job_cap_usd=None)
    assert "triage.budget_usd_per_day" in over_budget(0.5, app_spent=0, app_cap=None, job_spent=0, job_cap_usd=0.4)


@pytest.mark.parametrize("name,value", [("TRIAGE_BUDGET_USD_PER_DAY", "lots"), ("TRIAGE_DBU_RATES", "DS3=fast"),
                                        ("TRIAGE_DBU_PRICE_USD", "1,2,3"), ("TRIAGE_LLM_BUDGET_SHARE", "2"),
                                        ("TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS", "-1")])
def test_bad_budget_settings_name_the_setting(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_model_calls_are_counted_and_skipped_once_the_models_share_is_spent(fake_openai, store):
    from shared.triage import decide
    from tests.helpers import make_snapshot

    env = {"OPENAI_BASE_URL": f"{fake_openai.url}/v1", "OPENAI_API_KEY": "fake-api-key", "OPENAI_MODEL": "gpt-test",
           "TRIAGE_BUDGET_USD_PER_DAY": "0.01", "TRIAGE_LLM_BUDGET_SHARE": "0.05",
           "TRIAGE_LLM_PRICE_USD_PER_1M_TOKENS": "150,600"}      # dear tokens: one call spends the share
    settings = Settings.from_env(env)
    first = decide(make_snapshot("Vendor file feed_17.csv rejected by the landing checker"), settings, store=store)
    assert fake_openai.calls == 1 and first.llm["cost_usd"] > 0
    assert today(store)["model_usd"] == pytest.approx(first.llm["cost_usd"], abs=1e-5)
    assert today(store)["total_usd"] == today(store)["model_usd"]
    second = decide(make_snapshot("Partner drop zone 9 refused the manifest"), settings, store=store)
    assert fake_openai.calls == 1                                  # not asked again: the rules decide
    assert second.llm["status"] == "skipped" and "share of the daily budget" in second.llm["reason"]


def test_health_shows_the_cap_and_todays_spend_without_opening_a_store(tmp_path):
    from blueprints.health import health_report
    from shared.app.runtime import process_runtime

    env = {"TRIAGE_STORAGE": f"sqlite:///{tmp_path / 'h.db'}", "TRIAGE_BUDGET_USD_PER_DAY": "25"}
    status, body = health_report(env)
    assert status == 200 and body["budget"] == {"usd_per_day": 25.0, "today_usd": None, "today_model_usd": None}
    with process_runtime(Settings.from_env(env)) as rt:          # a trigger has run in this process
        add_spend(rt.store, 1.25, day=day_of(), job_id="7")
        add_spend(rt.store, 0.01, day=day_of(), model=True)
    status, body = health_report(env)
    assert body["budget"] == {"usd_per_day": 25.0, "today_usd": 1.26, "today_model_usd": 0.01}


def test_report_shows_spend_per_day_job_and_category_against_the_budget(fake_databricks, client, store):
    from shared.learning.report import load_report, render_text, report_to_dict

    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "5"})
    started = triage_run(_load(fake_databricks, "dev-055"), settings, client=client, store=store,
                         act_now=True).record
    tight = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "0.001"})
    stopped = triage_run(_load(fake_databricks, "dev-043"), tight, client=client, store=store, act_now=True).record
    assert stopped.decision["cost"]["stopped_by"] == "app"
    report = load_report(store, since_s=86400, budget_usd_per_day=5.0)
    spend = report_to_dict(report)["spend"]
    usd = round(started.decision["cost"]["rerun"]["usd"], 4)
    assert spend["total"]["spent_usd"] == usd and spend["total"]["stopped"] == 1
    [day] = spend["per_day"]
    assert day["spent_usd"] == usd and day["budget_usd"] == 5.0 and day["over_budget"] is False
    assert {j["job_id"]: j["spent_usd"] for j in spend["per_job"]}[started.job_id] == usd
    assert {c["category"]: c["stopped"] for c in spend["per_category"]}[stopped.category] == 1
    text = render_text(report)
    assert "Spend (budget $5.00 a day" in text and f"${usd:.2f}" in text


# --- a resumed action and the budget (docs/lifecycle.md) -------------------------------------------

def _retrying_after(fake, client, store, settings, case, endpoint, *faults):
    run_id = _load(fake, case)
    fake.inject(endpoint, *faults)
    record = triage_run(run_id, settings, client=client, store=store, act_now=True).record
    assert record.status == "retrying", record.to_dict()
    fake._faults.clear()
    return record


def test_a_repair_resent_after_a_503_is_held_against_the_budget_again(fake_databricks, client, store):
    """A repair absent from repair_history has surely not run: the day's spend may have grown."""
    from demo.workspace import status_fault

    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "1"})
    record = _retrying_after(fake_databricks, client, store, settings, "dev-043", "runs/repair",
                             *[status_fault(503, retry_after=0)] * 10)
    sent = len(fake_databricks.requests_to("runs/repair"))
    add_spend(store, 0.9999, day=day_of())                 # other reruns used the day's budget meanwhile
    [done] = act_due(settings, client=client, store=store, now=record.action_result["next_at"] + 1)
    assert done.action == "SEND_EMAIL" and done.status == "acted" and "daily budget" in done.reason
    assert done.decision["cost"]["stopped_by"] == "app"
    assert fake_databricks.repairs == [] and len(fake_databricks.requests_to("runs/repair")) == sent   # not sent again
    assert today(store)["total_usd"] == pytest.approx(0.9999, abs=1e-5)


def test_a_submit_refused_with_503_is_held_against_the_budget_again(fake_databricks, client, store):
    from demo.workspace import status_fault

    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "1"})
    record = _retrying_after(fake_databricks, client, store, settings, "dev-055", "runs/submit",
                             *[status_fault(503, retry_after=0)] * 10)
    assert record.action_result["http_status"] == 503
    sent = len(fake_databricks.requests_to("runs/submit"))
    add_spend(store, 0.9999, day=day_of())
    [done] = act_due(settings, client=client, store=store, now=record.action_result["next_at"] + 1)
    assert done.action == "SEND_EMAIL" and "daily budget" in done.reason
    assert len(fake_databricks.requests_to("runs/submit")) == sent and len(fake_databricks.submitted) == 0


def test_a_submit_that_may_exist_is_resent_as_granted_and_counted_once(fake_databricks, client, store):
    """A lost answer: the run may exist, so the resend (same idempotency token) is not checked
    again, whatever was spent meanwhile; its estimate is counted once."""
    from demo.workspace import drop_fault, lost_answer_fault

    settings = Settings.from_env({"TRIAGE_MODE": "act", "TRIAGE_BUDGET_USD_PER_DAY": "5"})
    record = _retrying_after(fake_databricks, client, store, settings, "dev-055", "runs/submit", lost_answer_fault(),
                             *[drop_fault()] * 7)        # the client's own resends lose their answers too
    assert record.action_result["http_status"] is None and len(fake_databricks.submitted) == 1
    add_spend(store, 4.9999, day=day_of())                 # the day's budget is now spent
    [done] = act_due(settings, client=client, store=store, now=record.action_result["next_at"] + 1)
    assert done.action == "RETRY_WITH_NEW_PARAMS" and done.status == "acted"
    assert done.action_result["run_id"] in fake_databricks.submitted and len(fake_databricks.submitted) == 1
    usd = done.decision["cost"]["rerun"]["usd"]
    assert today(store)["total_usd"] == pytest.approx(4.9999 + usd, abs=1e-5)


def test_a_repair_found_in_repair_history_is_counted_once(fake_databricks, client, store):
    """The worker died after Databricks ran the repair, before it counted the spend: the sweep's
    reconciliation counts it; a second reconciliation (or a worker that had counted) does not."""
    from demo.workspace import lost_answer_fault
    from shared.databricks.budget import spend_rerun

    settings = Settings.from_env({"TRIAGE_MODE": "act"})
    record = _retrying_after(fake_databricks, client, store, settings, "dev-043", "runs/repair", lost_answer_fault())
    assert today(store)["total_usd"] == 0                  # the worker never learnt that it ran
    [done] = act_due(settings, client=client, store=store, now=record.action_result["next_at"] + 1)
    assert done.status == "acted" and done.action_result["repair_id"] == fake_databricks.repairs[0]["repair_id"]
    usd = done.decision["cost"]["rerun"]["usd"]
    assert usd > 0 and today(store)["total_usd"] == pytest.approx(usd, abs=1e-5)
    spend_rerun(done, store)                               # seen again: not counted twice
    assert today(store)["total_usd"] == pytest.approx(usd, abs=1e-5)
    assert spent(store, day=day_of(), job_id=done.job_id) == pytest.approx(usd, abs=1e-5)


_RECONCILE_LATER = """
import sys
from shared.config import Settings
from shared.databricks.budget import spend_rerun
from shared.store import open_store
from shared.store.spend import today
with open_store(Settings.from_env({"TRIAGE_STORAGE": sys.argv[1]})) as store:
    spend_rerun(store.get(sys.argv[2], sys.argv[3]), store)
    print(today(store)["total_usd"])
"""


def test_a_rerun_counted_before_its_worker_died_is_not_counted_again_by_a_reconciliation_days_later(tmp_path):
    """The worker counted the repair's spend and died before recording it; the sweeps stopped for
    four days (they reconcile a week back). The reconciliation must not count it again on the
    day it runs: the 'spent' marker used to live three days, so it was counted twice. The second
    process's clock is moved by libfaketime."""
    import os
    import subprocess
    import sys

    import libfaketime

    from shared.databricks.budget import spend_rerun
    from shared.store import DecisionRecord, open_store

    storage = f"sqlite:///{tmp_path / 't.db'}"
    with open_store(Settings.from_env({"TRIAGE_STORAGE": storage})) as store:
        rec = DecisionRecord(decision_key="501-0", job_id="7", run_id=501, mode="act", status="acting",
                             action="RETRY", category="TIMEOUT", decision={"cost": {"rerun": {"usd": 2.5}}},
                             action_result={"repair_id": 9001})
        assert store.claim(rec).won
        spend_rerun(store.get("501-0", "7"), store)             # the worker counted it, then died
        assert today(store)["total_usd"] == pytest.approx(2.5)
    _, preload = libfaketime.get_reload_information()
    done = subprocess.run([sys.executable, "-c", _RECONCILE_LATER, storage, "501-0", "7"],
                          env={**os.environ, **preload, "FAKETIME": "+4d", "DONT_FAKE_MONOTONIC": "1"},
                          capture_output=True, text=True, timeout=60, cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) == 0.0, "counted again on the day of the reconciliation"
