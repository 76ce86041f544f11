import base64
import json
import re
import secrets

import pytest

import shared.signing as signing
from shared.signing import FeedbackClaim, key_from_secret, make_token, verify_token

KEY = secrets.token_bytes(32)
NOW = 1_800_000_000


def test_signing_exports_exist():
    assert all(hasattr(signing, name) for name in signing.__all__)


def test_make_token_roundtrip_returns_claim():
    token = make_token(KEY, "123-0", "correct", expires_at=NOW + 60)
    assert verify_token(KEY, token, now=NOW) == FeedbackClaim("123-0", "correct", NOW + 60)


def test_make_token_is_url_path_safe():
    token = make_token(KEY, "2707385833224991-12", "wrong", expires_at=NOW + 14 * 86400)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token)
    assert "=" not in token and "/" not in token and "+" not in token


def test_verify_token_expired_raises_with_reason():
    token = make_token(KEY, "1-0", "correct", expires_at=NOW)
    with pytest.raises(ValueError, match=r"^expired: the link was valid until 2027-01-15 08:00 UTC$"):
        verify_token(KEY, token, now=NOW)


def test_verify_token_other_key_rejected():
    token = make_token(KEY, "1-0", "correct", expires_at=NOW + 60)
    with pytest.raises(ValueError, match="invalid signature"):
        verify_token(secrets.token_bytes(32), token, now=NOW)


def test_verify_token_altered_verdict_rejected():
    token = make_token(KEY, "1-0", "correct", expires_at=NOW + 60)
    body, sig = token.split(".")
    doc = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    doc["v"] = "wrong"
    forged = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="invalid signature"):
        verify_token(KEY, f"{forged}.{sig}", now=NOW)


def test_verify_token_extended_expiry_rejected():
    token = make_token(KEY, "1-0", "correct", expires_at=NOW + 60)
    other = make_token(KEY, "1-0", "correct", expires_at=NOW + 10**6)
    spliced = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(ValueError, match="invalid signature"):
        verify_token(KEY, spliced, now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!.abc", "abc.!!", ".abc", "abc.", "é.abc",
                                   "x" * 2000 + ".abc"])
def test_verify_token_malformed_rejected(token):
    with pytest.raises(ValueError, match="^malformed token|^invalid signature"):
        verify_token(KEY, token, now=NOW)


def test_verify_token_signed_non_object_payload_rejected():
    body = base64.urlsafe_b64encode(b"[1,2]").rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(signing._sign(KEY, body)).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="malformed token: the payload is not an object"):
        verify_token(KEY, f"{body}.{sig}", now=NOW)


def test_make_token_short_key_rejected():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        make_token(b"short", "1-0", "correct", expires_at=NOW)


@pytest.mark.parametrize("verdict", ["", "Correct", "correct!", "a" * 40, None])
def test_make_token_bad_verdict_rejected(verdict):
    with pytest.raises(ValueError, match="verdict"):
        make_token(KEY, "1-0", verdict, expires_at=NOW)


@pytest.mark.parametrize("decision_key", ["", "a\nb", "k" * 300])
def test_make_token_bad_decision_key_rejected(decision_key):
    with pytest.raises(ValueError, match="decision_key"):
        make_token(KEY, decision_key, "correct", expires_at=NOW)


@pytest.mark.parametrize("expires_at", [0, -5, 1.5, True, "123"])
def test_make_token_bad_expiry_rejected(expires_at):
    with pytest.raises(ValueError, match="expires_at"):
        make_token(KEY, "1-0", "correct", expires_at=expires_at)


def test_key_from_secret_text_is_utf8_bytes():
    text = secrets.token_urlsafe(32)
    assert key_from_secret(text) == text.encode("utf-8")
    with pytest.raises(ValueError, match="TRIAGE_FEEDBACK_SIGNING_KEY"):
        key_from_secret("too-short")
