"""The demo's WOULD SEND column: what each path would send, with the change list in words."""

from demo.__main__ import would_send


def test_submit_names_the_identity_and_the_changes():
    plan = {"kind": "submit", "changes": ["job cluster main: driver Standard_E8ds_v5 -> Standard_E16ds_v5"],
            "requests": [{"method": "POST", "path": "/api/2.2/jobs/runs/submit",
                          "body": {"run_as": {"service_principal_name": "sp-1"}}}]}
    assert would_send("RETRY_WITH_NEW_PARAMS", plan) == (
        "runs/submit (one-time run as service principal sp-1): job cluster main: driver Standard_E8ds_v5 -> "
        "Standard_E16ds_v5")


def test_in_place_shows_the_update_the_repair_and_the_restore():
    plan = {"kind": "update_repair", "changes": ["job cluster etl: workers 4 -> 8"],
            "requests": [{"path": "/api/2.2/jobs/update", "body": {}}, {"path": "/api/2.2/jobs/runs/repair", "body": {}}]}
    assert would_send("RETRY_WITH_NEW_PARAMS", plan) == (
        "jobs/update + runs/repair, then the job put back: job cluster etl: workers 4 -> 8")


def test_repair_email_and_nothing():
    plan = {"kind": "repair", "requests": [{"path": "/api/2.2/jobs/runs/repair",
                                             "body": {"latest_repair_id": 7, "job_parameters": {"d": "x"}}}]}
    assert would_send("RETRY", plan) == "runs/repair of all failed tasks (latest_repair_id 7; job parameters d)"
    assert would_send("SEND_EMAIL", {"notify": "owner", "changes": ["job cluster a: workers 2 -> 4"]}) == \
        "email (owner) with the change: job cluster a: workers 2 -> 4"
    assert would_send("IGNORE", {"kind": "none"}) == "-"
