"""The right knob, bounded where the request is built (shared.databricks.resize), and sent through
the production client: a driver-side failure changes the driver, not the workers."""

from __future__ import annotations

from demo.workspace import make_snapshot
from shared.config import Settings
from shared.databricks.resize import bound_cluster_change, resize_cluster
from shared.triage import triage_run

LADDER = "Standard_E8ds_v5,Standard_E16ds_v5,Standard_E32ds_v5"


def cfg(**env) -> Settings:
    return Settings.from_env({"TRIAGE_NODE_TYPE_LADDER": LADDER, "TRIAGE_MAX_WORKERS": "16",
                              **{k: str(v) for k, v in env.items()}})


def spec(**kw):
    return {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_E8ds_v5", "num_workers": 4, **kw}


def test_driver_knob_steps_the_driver_and_doubles_max_result_size_only():
    out, changes, _ = resize_cluster(spec(), {"knob": "driver", "driver_node_type_step": 1,
                                              "driver_max_result_size_factor": 2}, cfg())
    assert out["num_workers"] == 4 and out["node_type_id"] == "Standard_E8ds_v5"
    assert out["driver_node_type_id"] == "Standard_E16ds_v5"
    assert out["spark_conf"] == {"spark.driver.maxResultSize": "8g"}
    assert changes == ["driver Standard_E8ds_v5 -> Standard_E16ds_v5", "spark.driver.maxResultSize unset -> 8g"]


def test_driver_knob_steps_from_the_drivers_own_type_and_doubles_the_set_limit():
    out, changes, _ = resize_cluster(spec(driver_node_type_id="Standard_E16ds_v5",
                                          spark_conf={"spark.driver.maxResultSize": "16g"}),
                                     {"knob": "driver", "driver_node_type_step": 1,
                                      "driver_max_result_size_factor": 2}, cfg())
    assert out["driver_node_type_id"] == "Standard_E32ds_v5" and out["spark_conf"]["spark.driver.maxResultSize"] == "32g"


def test_driver_at_the_top_of_the_ladder_changes_only_the_allowed_conf():
    out, changes, rejected = resize_cluster(spec(driver_node_type_id="Standard_E32ds_v5"),
                                            {"knob": "driver", "driver_node_type_step": 1,
                                             "driver_max_result_size_factor": 2}, cfg())
    assert "driver_node_type_id" in out and out["driver_node_type_id"] == "Standard_E32ds_v5"
    assert changes == ["spark.driver.maxResultSize unset -> 8g"]


def test_driver_conf_outside_the_allow_list_is_refused():
    out, changes, rejected = resize_cluster(spec(), {"knob": "driver", "driver_max_result_size_factor": 2},
                                            cfg(TRIAGE_SPARK_CONF_ALLOWLIST="spark.sql.shuffle.partitions"))
    assert changes == [] and "spark.driver.maxResultSize" in rejected[0]


def test_a_driver_two_steps_up_or_a_pooled_driver_is_refused():
    _, changes, rejected = bound_cluster_change(spec(), {"driver_node_type_id": "Standard_E32ds_v5"}, cfg())
    assert changes == [] and "not one ladder step" in rejected[0]
    _, changes, rejected = bound_cluster_change(spec(instance_pool_id="p"), {"driver_node_type_id": "Standard_E16ds_v5"},
                                                cfg())
    assert changes == [] and "instance pool" in rejected[0]


def test_disk_knob_steps_the_node_type_not_the_workers():
    out, changes, _ = resize_cluster(spec(), {"knob": "disk", "node_type_step": 1}, cfg())
    assert out["num_workers"] == 4 and out["node_type_id"] == "Standard_E16ds_v5"
    assert changes == ["worker node type Standard_E8ds_v5 -> Standard_E16ds_v5"]


def test_executor_knob_doubles_workers_then_steps_the_node_at_the_ceiling():
    out, changes, _ = resize_cluster(spec(), {"knob": "executors", "num_workers_factor": 2}, cfg())
    assert (out["num_workers"], out["node_type_id"]) == (8, "Standard_E8ds_v5") and changes == ["workers 4 -> 8"]
    out, changes, _ = resize_cluster(spec(num_workers=16), {"knob": "executors", "num_workers_factor": 2}, cfg())
    assert (out["num_workers"], out["node_type_id"]) == (16, "Standard_E16ds_v5")


def test_max_result_size_failure_changes_the_driver_not_the_workers(fake_databricks, client, store):
    """The issue's second check, through the production client against the fake workspace."""
    error = ("org.apache.spark.SparkException: Job aborted due to stage failure: Total size of serialized results "
             "of 1211 tasks (4.0 GiB) is bigger than spark.driver.maxResultSize (4.0 GiB)")
    cluster = spec()
    fake_databricks.load(make_snapshot(run_id=6100, error=error, job_clusters=[
        {"job_cluster_key": "main", "new_cluster": cluster}]))
    result = triage_run(6100, cfg(TRIAGE_MODE="act"), client=client, store=store, act_now=True, use_llm=False)
    assert (result.record.action, result.record.status) == ("RETRY_WITH_NEW_PARAMS", "acted")
    [submit] = fake_databricks.requests_to("runs/submit")
    [task] = submit.body["tasks"]
    nc = task["new_cluster"]
    assert nc["num_workers"] == cluster["num_workers"] and nc["node_type_id"] == cluster["node_type_id"]
    assert nc["driver_node_type_id"] == "Standard_E16ds_v5" and nc["spark_conf"]["spark.driver.maxResultSize"] == "8g"
    assert "driver" in result.record.reason
    changes = result.record.action_request["changes"]
    assert "job cluster main: driver Standard_E8ds_v5 -> Standard_E16ds_v5" in changes


def test_worker_suggestions_on_the_driver_knob_are_refused_whoever_makes_them():
    out, changes, rejected = resize_cluster(spec(), {"knob": "driver", "driver_node_type_step": 1,
                                                     "num_workers": 8, "num_workers_factor": 2}, cfg())
    assert out["num_workers"] == 4 and changes == ["driver Standard_E8ds_v5 -> Standard_E16ds_v5"]
    assert any("hit the driver" in r for r in rejected)
