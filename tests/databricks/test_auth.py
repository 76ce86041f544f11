"""Databricks unified auth: OAuth M2M against the stand-in workspace's /oidc/v1/token (cached,
refreshed before expiry, fetched again when the workspace refuses an expired token), the choice
of credential (DATABRICKS_AUTH_TYPE, the DATABRICKS_AUTH alias, per-workspace settings) and
~/.databrickscfg profiles."""

from __future__ import annotations

import io
import json
import time

import pytest

from shared.config import Settings
from shared.databricks import DatabricksClient, RetryPolicy
from shared.databricks.auth import (AzureIdentityCredential, OAuthM2MCredential, PatCredential, credential_for,
                                    profile_settings)
from shared.errors import ConfigError, DatabricksAuthError, SecretError
from shared.secrets import SecretProvider, key_vault_name
from tests.helpers import corpus_doc


def _choose(env: dict[str, str], workspace_id: str = ""):
    settings = Settings.from_env(env)
    return credential_for(settings, SecretProvider(env=env), host="https://adb-1.1.azuredatabricks.net",
                          workspace_id=workspace_id)


def test_oauth_token_is_fetched_once_cached_and_refreshed_before_expiry(fake_databricks):
    client_id, secret = fake_databricks.add_oauth_client()
    now = [1000.0]
    cred = OAuthM2MCredential(fake_databricks.url, client_id, lambda: secret, clock=lambda: now[0],
                              refresh_margin_s=300)
    first = cred.authorization()
    assert first.startswith("Bearer eyJfake.") and cred.authorization() == first and cred.fetches == 1
    [call] = fake_databricks.requests_to("/oidc/v1/token")
    assert call.body == {"grant_type": "client_credentials", "scope": "all-apis"} and call.auth == "basic"
    now[0] += 3600 - 301                       # still more than the margin left
    assert cred.authorization() == first and cred.fetches == 1
    now[0] += 2                                # within five minutes of expiry: a new token
    assert cred.authorization() != first and cred.fetches == 2
    assert secret in cred.secrets() and secret not in repr(cred)


def test_workspace_accepts_issued_tokens_and_an_expired_one_is_replaced(fake_databricks):
    client_id, secret = fake_databricks.add_oauth_client()
    run_id = fake_databricks.load(corpus_doc("dev-001"))
    fake_databricks.oauth_token_lifetime_s = 0.3
    # a clock that never moves: only the workspace's 401 can tell the credential its token expired
    cred = OAuthM2MCredential(fake_databricks.url, client_id, secret, clock=lambda: 0.0)
    with DatabricksClient(fake_databricks.url, cred, retry=RetryPolicy(deadline_s=5, sleep=lambda s: None)) as c:
        assert c.get_run(run_id)["run_id"] == run_id
        time.sleep(0.4)
        assert c.get_run(run_id)["run_id"] == run_id
    assert cred.fetches == 2
    statuses = [r.status for r in fake_databricks.requests_to("runs/get")]
    assert 401 in statuses and statuses[-1] == 200


def test_a_wrong_client_secret_is_refused_naming_the_client_not_the_secret(fake_databricks):
    client_id, _ = fake_databricks.add_oauth_client()
    wrong = "dose" + "ab" * 16
    cred = OAuthM2MCredential(fake_databricks.url, client_id, wrong)
    with pytest.raises(DatabricksAuthError) as info:
        cred.authorization()
    text = str(info.value)
    assert client_id in text and "invalid_client" in text and "DATABRICKS_CLIENT_SECRET" in text
    assert wrong not in text and info.value.status == 401


@pytest.mark.parametrize("env, kind", [
    ({"DATABRICKS_TOKEN": "dapi" + "1" * 32}, PatCredential),
    ({"DATABRICKS_CLIENT_ID": "sp", "DATABRICKS_CLIENT_SECRET": "s" * 20}, OAuthM2MCredential),   # unified-auth order
    ({"DATABRICKS_TOKEN": "dapi" + "1" * 32, "DATABRICKS_CLIENT_ID": "sp", "DATABRICKS_CLIENT_SECRET": "s" * 20},
     PatCredential),
    ({"DATABRICKS_AUTH_TYPE": "oauth-m2m", "DATABRICKS_TOKEN": "dapi" + "1" * 32, "DATABRICKS_CLIENT_ID": "sp",
      "DATABRICKS_CLIENT_SECRET": "s" * 20}, OAuthM2MCredential),
    ({"DATABRICKS_AUTH_TYPE": "azure-cli"}, AzureIdentityCredential),
    ({"DATABRICKS_AUTH_TYPE": "azure-msi", "ARM_CLIENT_ID": "00000000-0000-0000-0000-000000000001"},
     AzureIdentityCredential),
    ({"DATABRICKS_AUTH_TYPE": "azure-client-secret", "ARM_CLIENT_ID": "c", "ARM_TENANT_ID": "t",
      "ARM_CLIENT_SECRET": "x" * 20}, AzureIdentityCredential),
    ({"DATABRICKS_AUTH": "azure-identity"}, AzureIdentityCredential),                    # the old name
])
def test_credential_choice_follows_unified_auth(env, kind):
    assert isinstance(_choose(env), kind)


@pytest.mark.parametrize("env, error, text", [
    ({}, SecretError, "no Databricks credential: set DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and"),
    ({"DATABRICKS_AUTH_TYPE": "pat", "DATABRICKS_CLIENT_ID": "sp", "DATABRICKS_CLIENT_SECRET": "s" * 20},
     SecretError, "no Databricks credential"),
    ({"DATABRICKS_AUTH_TYPE": "oauth-m2m", "DATABRICKS_CLIENT_SECRET": "s" * 20}, ConfigError, "DATABRICKS_CLIENT_ID"),
    ({"DATABRICKS_AUTH_TYPE": "oauth-m2m", "DATABRICKS_CLIENT_ID": "sp"}, SecretError, "databricks-client-secret"),
    ({"DATABRICKS_AUTH_TYPE": "azure-client-secret", "ARM_CLIENT_ID": "c"}, ConfigError, "ARM_TENANT_ID"),
    ({"DATABRICKS_AUTH_TYPE": "basic"}, ConfigError, "DATABRICKS_AUTH_TYPE: 'basic' is not one of pat, oauth-m2m"),
    ({"DATABRICKS_AUTH": "token"}, ConfigError, "DATABRICKS_AUTH: 'token' is not one of"),
])
def test_credential_problems_name_the_setting(env, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(")):
        _choose(env)


def test_each_workspace_may_have_its_own_credential():
    env = {"DATABRICKS_TOKEN": "dapi" + "1" * 32, "DATABRICKS_TOKEN__111": "dapi" + "2" * 32,
           "DATABRICKS_AUTH_TYPE__222": "oauth-m2m", "DATABRICKS_CLIENT_ID__222": "sp-222",
           "DATABRICKS_CLIENT_SECRET__222": "s" * 20}
    assert _choose(env, "111").authorization() == "Bearer dapi" + "2" * 32
    assert _choose(env, "333").authorization() == "Bearer dapi" + "1" * 32
    m2m = _choose(env, "222")
    assert isinstance(m2m, OAuthM2MCredential) and m2m.client_id == "sp-222"
    assert key_vault_name("DATABRICKS_CLIENT_SECRET__222") == "databricks-client-secret--222"
    with pytest.raises(ValueError, match="is not a secret setting"):
        SecretProvider(env=env).get_optional("DATABRICKS_HOST__111")


def test_two_workspaces_swept_each_with_its_own_credential(tmp_path):
    from demo.workspace import FakeDatabricks
    from shared.cli import main

    now = int(time.time() * 1000)
    with FakeDatabricks() as a, FakeDatabricks() as b:
        for fake, case in ((a, "dev-001"), (b, "dev-043")):
            doc = corpus_doc(case)
            doc.pop("history", None)
            doc["run"]["end_time"], doc["run"]["start_time"] = now - 60_000, now - 120_000
            fake.load(doc)
        client_id, secret = b.add_oauth_client()
        env = {"TRIAGE_WORKSPACES": f"111={a.url},222={b.url}", "DATABRICKS_TOKEN__111": a.token,
               "DATABRICKS_AUTH_TYPE__222": "oauth-m2m", "DATABRICKS_CLIENT_ID__222": client_id,
               "DATABRICKS_CLIENT_SECRET__222": secret, "TRIAGE_STORAGE": f"sqlite:///{tmp_path / 't.db'}"}
        out, err = io.StringIO(), io.StringIO()
        code = main(["sweep", "--inline", "-o", "json"], env=env, stdout=out, stderr=err)
        assert code == 0, err.getvalue()
        report = json.loads(out.getvalue())
        assert [len(w["enqueued"]) for w in report["workspaces"]] == [1, 1]
        assert all(r.auth == "valid" for r in a.requests) and all(r.auth == "valid" for r in b.requests
                                                                   if r.path.startswith("/api/"))
        assert len(b.requests_to("/oidc/v1/token")) == 1 and not a.requests_to("/oidc/v1/token")


def test_databrickscfg_profiles_fill_what_the_environment_leaves(tmp_path):
    cfg = tmp_path / "cfg"
    cfg.write_text("[DEFAULT]\nhost = https://adb-1.1.azuredatabricks.net\ntoken = dapi" + "3" * 32 + "\n\n"
                   "[sp]\nhost = https://adb-2.2.azuredatabricks.net\nauth_type = oauth-m2m\n"
                   "client_id = sp-id\nclient_secret = " + "s" * 20 + "\n")
    assert profile_settings({"DATABRICKS_CONFIG_FILE": str(cfg)}) == {
        "DATABRICKS_HOST": "https://adb-1.1.azuredatabricks.net", "DATABRICKS_TOKEN": "dapi" + "3" * 32}
    got = profile_settings({"DATABRICKS_CONFIG_FILE": str(cfg), "DATABRICKS_CONFIG_PROFILE": "sp",
                            "DATABRICKS_HOST": "https://adb-9.9.azuredatabricks.net"})
    assert got == {"DATABRICKS_AUTH_TYPE": "oauth-m2m", "DATABRICKS_CLIENT_ID": "sp-id",
                   "DATABRICKS_CLIENT_SECRET": "s" * 20}                       # the environment's host wins
    assert profile_settings({}, home=str(tmp_path)) == {}                     # no ~/.databrickscfg: nothing
    with pytest.raises(ConfigError, match=r"has no profile \[prod\]"):
        profile_settings({"DATABRICKS_CONFIG_FILE": str(cfg), "DATABRICKS_CONFIG_PROFILE": "prod"})
    with pytest.raises(ConfigError, match="there is no configuration file"):
        profile_settings({"DATABRICKS_CONFIG_PROFILE": "prod"}, home=str(tmp_path))


def test_cli_uses_the_profile(fake_databricks, tmp_path):
    from shared.cli import main

    run_id = fake_databricks.load(corpus_doc("dev-001"))
    client_id, secret = fake_databricks.add_oauth_client()
    cfg = tmp_path / ".databrickscfg"
    cfg.write_text(f"[ops]\nhost = {fake_databricks.url}\nauth_type = oauth-m2m\nclient_id = {client_id}\n"
                   f"client_secret = {secret}\n")
    env = {"DATABRICKS_CONFIG_FILE": str(cfg), "DATABRICKS_CONFIG_PROFILE": "ops", "TRIAGE_STORAGE":
           f"sqlite:///{tmp_path / 't.db'}"}
    out, err = io.StringIO(), io.StringIO()
    assert main(["snapshot", "--run-id", str(run_id), "--no-store", "-q"], env=env, stdout=out, stderr=err) == 0, \
        err.getvalue()
    assert json.loads(out.getvalue())["run"]["run_id"] == run_id
    assert len(fake_databricks.requests_to("/oidc/v1/token")) == 1
    out, err = io.StringIO(), io.StringIO()
    code = main(["snapshot", "--run-id", "1", "--no-store"], env={**env, "DATABRICKS_CONFIG_PROFILE": "nope"},
                stdout=out, stderr=err)
    assert code == 2 and err.getvalue().startswith("error: ConfigError: DATABRICKS_CONFIG_PROFILE=nope: ")
