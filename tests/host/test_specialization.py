"""A placeholder worker specialised into this app: the host starts workers before it knows the app
(placeholder mode), then sends the app's folder and environment (FunctionEnvironmentReloadRequest);
the worker replaces its environment, indexes function_app.py and serves it. Run in a fresh
process, because the worker replaces the whole process environment and imports the app once."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("azure_functions_runtime", reason="the Functions Python worker library needs Python 3.13+ "
                    "(make test runs tests/host in .venv-worker)")

from tests.host.conftest import ROOT

SCRIPT = r"""
import json, os, pathlib, sys, tempfile
from tests.host.functions_host import FunctionsHost
from tests.host.protos import load_protos

root, work = pathlib.Path(sys.argv[1]), pathlib.Path(tempfile.mkdtemp())
placeholder = work / "placeholder"
placeholder.mkdir()
host = FunctionsHost(placeholder, load_protos(work), host_json={}).start()
before = sorted(host.functions)
imported_before = "function_app" in sys.modules
env = {"PATH": os.environ.get("PATH", ""), "TRIAGE_MODE": "shadow",
       "DATABRICKS_HOST": "https://adb-1234567890123456.7.azuredatabricks.net", "DATABRICKS_TOKEN": "dapi-x"}
host.specialize(root, env)
health = host.http("GET", "/api/health")
print(json.dumps({"before": before, "imported_before": imported_before, "after": sorted(host.functions),
                  "status": health.status, "health": health.json(), "environ": sorted(os.environ)}))
host.close()
"""


def test_a_placeholder_worker_specialised_into_the_app_serves_it():
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], env=env, cwd="/", capture_output=True, check=False,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"] == [] and result["imported_before"] is False     # nothing indexed in placeholder mode
    assert {"databricks_webhook", "triage_worker", "triage_sweep", "health"} <= set(result["after"])
    assert result["status"] == 200 and result["health"]["mode"] == "shadow"  # the settings it was given
    assert result["health"]["integrations"]["databricks"] is True
    assert "HOME" not in result["environ"]                                  # the worker's environment was replaced
