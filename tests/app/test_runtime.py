"""shared/app/runtime.py: workspaces from the settings, and the objects every trigger builds."""

import pytest

from shared.notify import NullNotifier
from shared.config import Settings
from shared.databricks import AzureIdentityCredential, PatCredential
from shared.errors import ConfigError, SecretError
from shared.app.runtime import (
    Workspace,
    build_client,
    build_notifier,
    email_configured,
    open_runtime,
    resolve_workspace,
    workspace_for_host,
    workspaces,
)
from shared.secrets import SecretProvider

A = "https://adb-1111111111111111.1.azuredatabricks.net"
B = "https://adb-2222222222222222.2.azuredatabricks.net"
TOKEN = "dapi" + "0123456789abcdef" * 2


def _s(**env):
    return Settings.from_env(env)


def test_workspaces_default_to_databricks_host_with_its_id():
    assert workspaces(_s(DATABRICKS_HOST=A)) == [Workspace(A, "1111111111111111")]
    assert workspaces(_s()) == []


def test_workspaces_from_triage_workspaces_with_and_without_ids():
    got = workspaces(_s(DATABRICKS_HOST=A, TRIAGE_WORKSPACES=f"{A}, 42=my-ws.example.com/ ,{A}"))
    assert got == [Workspace(A, "1111111111111111"), Workspace("https://my-ws.example.com", "42")]


@pytest.mark.parametrize("bad", ["=", "a b=https://x.example.com", "https://x.example.com/path", "ftp://x"])
def test_workspaces_malformed_entry_names_the_setting(bad):
    with pytest.raises(ConfigError, match="TRIAGE_WORKSPACES"):
        workspaces(_s(TRIAGE_WORKSPACES=bad))


def test_resolve_workspace_by_id_or_single_unknown_id():
    two = _s(TRIAGE_WORKSPACES=f"{A},{B}")
    assert resolve_workspace(two, "2222222222222222").host == B
    assert resolve_workspace(two, "3") is None and resolve_workspace(two, "") is None
    assert resolve_workspace(_s(DATABRICKS_HOST=A), "").host == A
    assert resolve_workspace(_s(DATABRICKS_HOST=A), "3") is None          # another workspace's notification
    assert resolve_workspace(_s(DATABRICKS_HOST="https://ws.example.com"), "3").host == "https://ws.example.com"


def test_workspace_for_host_only_configured_hosts():
    s = _s(TRIAGE_WORKSPACES=f"{A},{B}")
    assert workspace_for_host(s, B + "/").host == B and workspace_for_host(s, "").host == A
    with pytest.raises(ConfigError, match="not configured"):
        workspace_for_host(s, "https://elsewhere.example.com")


def test_build_client_pat_reads_the_token_through_secrets():
    s = _s(DATABRICKS_HOST=A, DATABRICKS_TOKEN=TOKEN)
    client = build_client(s, SecretProvider.from_settings(s))
    assert isinstance(client.credential, PatCredential) and client.credential.authorization() == f"Bearer {TOKEN}"
    assert client.host == A and TOKEN not in repr(client)
    with pytest.raises(SecretError, match="DATABRICKS_TOKEN"):
        build_client(_s(DATABRICKS_HOST=A), SecretProvider(env={}))


def test_build_client_azure_identity_and_other_workspace():
    s = _s(DATABRICKS_HOST=A, DATABRICKS_AUTH="azure-identity", TRIAGE_WORKSPACES=f"{A},{B}")
    client = build_client(s, SecretProvider(env={}), workspace=Workspace(B, "2"))
    assert isinstance(client.credential, AzureIdentityCredential) and client.host == B
    with pytest.raises(ConfigError, match="DATABRICKS_HOST"):
        build_client(_s(), SecretProvider(env={}))


def test_build_notifier_null_without_email_settings(tmp_path):
    s = _s(TRIAGE_STORAGE=f"sqlite:///{tmp_path / 't.db'}")
    with open_runtime(s) as rt:
        assert isinstance(rt.notifier, NullNotifier)
        assert isinstance(build_notifier(s, rt.secrets, store=rt.store), NullNotifier)
    sender = "DoNotReply@example.com"
    assert not email_configured(_s(EMAIL_SENDER=sender))
    assert email_configured(_s(EMAIL_SENDER=sender, ACS_ENDPOINT="https://x.communication.azure.com"))
    assert email_configured(_s(EMAIL_SENDER=sender),
                            SecretProvider(env={"ACS_CONNECTION_STRING": "endpoint=https://x/;accesskey=abc"}))


def test_build_notifier_email_when_configured(tmp_path):
    from shared.notify import EmailNotifier

    s = _s(TRIAGE_STORAGE=f"sqlite:///{tmp_path / 't.db'}", EMAIL_SENDER="DoNotReply@example.com",
           ACS_ENDPOINT="https://x.communication.azure.com")
    with open_runtime(s) as rt:
        assert isinstance(rt.notifier, EmailNotifier)


def test_runtime_closes_only_what_it_built(tmp_path):
    from shared.store import open_store

    s = _s(TRIAGE_STORAGE=f"sqlite:///{tmp_path / 't.db'}", DATABRICKS_HOST=A, DATABRICKS_TOKEN=TOKEN)
    store = open_store(s)
    with open_runtime(s, store=store) as rt:
        assert rt.client() is rt.client(rt.workspaces[0])      # one client per workspace
    assert store.list() == []      # still open: the caller owns it
    store.close()


def test_process_runtime_reuses_the_store_and_key_vault_reader(tmp_path):
    from shared.app.runtime import process_runtime, process_secrets

    s = _s(TRIAGE_STORAGE=f"sqlite:///{tmp_path / 'p.db'}", DATABRICKS_HOST=A, DATABRICKS_TOKEN=TOKEN)
    with process_runtime(s) as first:
        store = first.store
    with process_runtime(s) as second:
        assert second.store is store and second.store.list() == []     # kept open across invocations
    vault = _s(KEY_VAULT_URL="https://kv-example.vault.azure.net")
    assert process_secrets(vault) is process_secrets(vault)
    assert process_secrets(s) is not process_secrets(s)                  # environment: read afresh


def test_process_runtime_reuses_databricks_clients_their_session_and_credential(tmp_path, fake_databricks):
    from shared.app.runtime import process_runtime

    env = dict(TRIAGE_STORAGE=f"sqlite:///{tmp_path / 'c.db'}", DATABRICKS_HOST=fake_databricks.url,
               DATABRICKS_TOKEN=fake_databricks.token)
    with process_runtime(_s(**env)) as first:
        client = first.client()
        client.get_run(fake_databricks.load({"run": {"run_id": 61, "state": {"life_cycle_state": "RUNNING"}}}))
        session, credential = client._session, client.credential
    with process_runtime(_s(**env)) as second:           # the next invocation on a warm instance
        again = second.client()
        assert again is client and again._session is session and again.credential is credential
        assert again.get_run(61)["run_id"] == 61          # still open: not closed with the first runtime
    with process_runtime(_s(**{**env, "DATABRICKS_TOKEN": TOKEN})) as changed:
        assert changed.client() is not client           # other settings: another client
    with open_runtime(_s(**env), store=first.store) as per_call:
        assert per_call.client() is not client          # a plain runtime builds its own


def test_sessions_trust_the_environment_only_when_a_proxy_or_ca_bundle_is_set(monkeypatch, fake_databricks):
    from shared.databricks import DatabricksClient, uses_environment

    assert not uses_environment({"PATH": "/bin"})
    assert uses_environment({"https_proxy": "http://proxy.internal:3128"})
    assert uses_environment({"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem"})
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                 "NETRC", "https_proxy", "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token)) as plain:
        list(plain.list_runs())
        assert plain._session.trust_env is False
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with DatabricksClient(fake_databricks.url, PatCredential(fake_databricks.token)) as proxied:
        list(proxied.list_runs())
        assert proxied._session.trust_env is True
