"""The real worker library starts on function_app.py, indexes it itself, and reports the same
functions and bindings the app declares (``function_app.app.get_functions()``)."""

import json
import subprocess
import sys
import uuid

import pytest

pytest.importorskip("azure_functions_runtime", reason="the Functions Python worker library needs Python 3.13+ "
                    "(make test runs tests/host in .venv-worker)")


from tests.host.conftest import ROOT

# What the app declares, read in a fresh interpreter: azure-functions 2.x refuses a second
# get_functions() on one FunctionApp, and the worker has made the first call in this process.
_DECLARE = """
import json, function_app
print(json.dumps({f.get_function_name(): {"raw": f.get_raw_bindings(),
                                          "bindings": {b.name: [b.type, int(b.direction)] for b in f.get_bindings()}}
                  for f in function_app.app.get_functions()}))
"""


def _declared():
    out = subprocess.run([sys.executable, "-c", _DECLARE], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_worker_init_succeeds_and_declares_what_it_needs_from_the_host(functions_host, protos):
    resp = functions_host.init_response
    assert resp.result.status == protos.StatusResult.Success
    caps = dict(resp.capabilities)
    # These decide how the host encodes HTTP requests: the body arrives as bytes, body only.
    assert caps["RawHttpBodyBytes"] == "true" and caps["RpcHttpBodyOnly"] == "true"
    assert caps["RpcHttpTriggerMetadataRemoved"] == "true"
    assert "HttpUri" not in caps                 # no HTTP streaming: the app uses plain HttpRequest
    meta = resp.worker_metadata
    assert meta.runtime_name == "python" and tuple(map(int, meta.runtime_version.split("."))) >= (3, 13)


def test_worker_indexes_the_same_functions_and_bindings_as_the_app(functions_host, protos):
    assert "function_app" in sys.modules          # the worker imported the app itself
    declared = _declared()
    reported = {fm.name: fm for fm in functions_host.metadata_response.function_metadata_results}
    assert functions_host.metadata_response.use_default_metadata_indexing is False
    assert set(reported) == set(declared)
    assert set(declared) >= {"databricks_webhook", "triage_worker", "triage_poison", "triage_sweep", "health",
                             "feedback_post", "feedback_link"}
    for name, fn in declared.items():
        fm = reported[name]
        assert fm.function_id == str(uuid.uuid5(uuid.NAMESPACE_OID, name))
        assert fm.language == "python" and fm.script_file.endswith("function_app.py")
        assert dict(fm.properties) == {"worker_indexed": "True"}
        assert [json.loads(b) for b in fm.raw_bindings] == [json.loads(b) for b in fn["raw"]]
        assert {k: [b.type, b.direction] for k, b in fm.bindings.items()} == fn["bindings"]
        assert sum(1 for b in fm.bindings.values() if b.type.endswith("Trigger")) == 1
        assert not fm.HasField("retry_options")  # retries are the queue's (host.json), not the worker's
    # What the host reads from the raw bindings: routes, auth levels, queues, the schedule.
    webhook = functions_host.functions["databricks_webhook"].trigger
    assert (webhook["route"], webhook["methods"], webhook["authLevel"]) == ("databricks/webhook", ["POST"], "FUNCTION")
    assert functions_host.functions["health"].trigger["authLevel"] == "ANONYMOUS"
    assert functions_host.functions["triage_worker"].trigger["queueName"] == "%TRIAGE_QUEUE_NAME%"
    assert functions_host.functions["triage_poison"].trigger["queueName"] == "%TRIAGE_QUEUE_NAME%-poison"
    assert functions_host.functions["triage_sweep"].trigger["schedule"] == "%TRIAGE_SWEEP_SCHEDULE%"


def test_every_function_loads(functions_host, protos):
    assert set(functions_host.load_responses) == set(functions_host.functions) and functions_host.functions
    for name, resp in functions_host.load_responses.items():
        assert resp.result.status == protos.StatusResult.Success, name
        assert resp.function_id == functions_host.functions[name].function_id


def test_log_lines_the_worker_ships_are_redacted(functions_host):
    """The app installs its redaction filter on the worker's log handler when it is imported."""
    from shared.redact import RedactingFilter

    handler = functions_host._handler
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    functions_host.logs.clear()
    import logging
    token = "dapi" + "0123456789abcdef" * 2   # built here, so no token-shaped string sits in the repo
    logging.getLogger("shared.probe").warning(f"calling with Authorization: Bearer {token}")
    [entry] = functions_host.logs
    assert token not in entry.message and "Bearer" in entry.message
