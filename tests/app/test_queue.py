"""shared/app/queue.py against Azurite: base64 text messages the queue trigger can read."""

import base64
import json
import socket
import uuid

import pytest

from shared.config import Settings
from shared.errors import ConfigError, QueueError
from shared.app.queue import MESSAGE_ENCODING, TriageQueue, queue_settings
from shared.app.messages import TriageRequest

REQUEST = TriageRequest(run_id=455644833, job_id=11223344, job_name="nightly-etl", request_id="r1", received_at=1)


def _name():
    return "q" + uuid.uuid4().hex[:12]


def _raw_messages(azurite, name):
    """The messages as stored (no decode policy): what the Functions host reads."""
    from azure.storage.queue import QueueClient

    with QueueClient.from_connection_string(azurite.connection_string, name) as raw:
        return [m.content for m in raw.receive_messages(max_messages=32)]


def test_send_creates_the_queue_and_writes_base64_json(azurite):
    name = _name()
    with TriageQueue.from_connection_string(azurite.connection_string, name) as queue:
        message_id = queue.send(REQUEST)
        queue(REQUEST)   # a TriageQueue is an enqueue function
    assert message_id
    raw = _raw_messages(azurite, name)
    assert len(raw) == 2
    decoded = base64.b64decode(raw[0]).decode()
    assert json.loads(decoded)["run_id"] == 455644833
    assert TriageRequest.from_message(decoded) == REQUEST


def test_from_settings_uses_azure_webjobs_storage_and_the_queue_name(azurite):
    name = _name()
    settings = Settings.from_env({"AzureWebJobsStorage": azurite.connection_string, "TRIAGE_QUEUE_NAME": name})
    with TriageQueue.from_settings(settings) as queue:
        queue.send(REQUEST)
        assert queue.queue_name == name and "AccountKey" not in repr(queue)
    assert len(_raw_messages(azurite, name)) == 1


def test_identity_based_account_url_with_a_credential(azurite):
    from azure.core.credentials import AzureNamedKeyCredential

    name = _name()
    credential = AzureNamedKeyCredential(azurite.account_name, azurite.account_key)
    with TriageQueue(azurite.endpoint("queue"), name, credential) as queue:
        queue.send(REQUEST)
    assert len(_raw_messages(azurite, name)) == 1


def test_unreachable_storage_raises_queue_error_naming_the_setting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={base64.b64encode(b'k').decode()};"
            f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    with TriageQueue.from_connection_string(conn, "triage-requests", retry_total=0) as queue:
        with pytest.raises(QueueError, match="AzureWebJobsStorage") as err:
            queue.send(REQUEST)
    assert "AccountKey" not in str(err.value)


def test_queue_settings_need_a_connection():
    with pytest.raises(ConfigError, match="AzureWebJobsStorage"):
        queue_settings(Settings.from_env({}))
    assert queue_settings(Settings.from_env({"AzureWebJobsStorage__accountName": "acct"})) == (
        "account-url", "https://acct.queue.core.windows.net")
    assert queue_settings(Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}))[0] == \
        "connection-string"


def test_bad_queue_name_is_a_config_error():
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "TRIAGE_QUEUE_NAME": "Bad_Name"})
    with pytest.raises(ConfigError, match="TRIAGE_QUEUE_NAME"):
        TriageQueue.from_settings(settings)


def test_message_encoding_matches_host_json():
    from pathlib import Path

    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    assert host["extensions"]["queues"]["messageEncoding"] == MESSAGE_ENCODING
