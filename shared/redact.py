"""Redaction: take secrets out of text before it leaves the process (policy invariant 7).

Applied to LLM prompts, emails, stored excerpts and log lines. Each secret is replaced by a
marker naming its kind, e.g. ``[REDACTED:databricks-token]``, so a reader still sees *that*
something was there. What is covered:

- Databricks personal access tokens and OAuth secrets (``dapi``/``dose``/``doau``/``dkea`` + hex)
- Azure SAS tokens (whole ``sv=…&sig=…`` query strings, and any ``sig=``), storage account keys
  (``AccountKey=…`` and bare 88-character base64 keys), connection-string secrets
  (``AccountKey``, ``SharedAccessKey``, ``SharedAccessSignature``, ``Password``, ``Pwd``),
  Entra ID client secrets
- passwords in JDBC/ODBC URLs and connection strings, and ``user:password@host`` in URLs
- ``Authorization:`` headers, ``Bearer …`` tokens and JWTs (``eyJ….….…``)
- AWS access key ids and secret keys, GitHub, Slack and OpenAI-style tokens
- PEM private-key blocks
- generic assignments: ``password=``, ``secret=``, ``token=``, ``api_key=``, ``client_secret:`` …

Every pattern is linear: repetitions are bounded and no two nested quantifiers can compete for
the same characters, so megabytes of text are redacted in bounded time. Redaction is
idempotent (markers are never redacted again).

``RedactingFilter`` is a ``logging.Filter`` that redacts each record's message, arguments and
formatted traceback; ``install_log_redaction()`` puts it on a logger and its handlers.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

__all__ = [
    "MARKER_PREFIX",
    "redact",
    "redact_obj",
    "is_sensitive_key",
    "RedactingFilter",
    "install_log_redaction",
]

MARKER_PREFIX = "[REDACTED:"


def _marker(kind: str) -> str:
    return f"{MARKER_PREFIX}{kind}]"


# A value that is already a marker must not be redacted again.
_NOT_MARKER = r"(?!\[REDACTED:)"

# Characters that end an unquoted value in a key=value / key: value assignment.
_VALUE_END = r"\s\"',;&<>(){}\[\]|`"

# --- patterns, applied in this order -----------------------------------------------------

# PEM private keys: the whole block, or (when truncated) the base64 body that follows.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,20000}?-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    r"|[A-Za-z0-9+/=\s\\:,-]{0,20000})"
)

# Connection-string secrets (Azure Storage, Service Bus / Event Hubs, SQL Server, ODBC).
# An ODBC value may be wrapped in braces: PWD={p;w}.
_CONN_SECRET = re.compile(
    r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|Client_Secret)"
    r"(\s{0,3}=\s{0,3})" + _NOT_MARKER + r"(\{[^}\n]{0,512}\}|[^;\s\"'<>]{1,2048})"
)
_CONN_KIND = {
    "accountkey": "storage-key",
    "sharedaccesskey": "shared-access-key",
    "sharedaccesssignature": "sas-token",
}

# A whole SAS query string: sv=2022-11-02&ss=b&...&sig=... (the permissions and expiry are
# not secret, but the string is only useful as a whole, so it goes as a whole).
_SAS_QUERY = re.compile(
    r"\bsv=\d{4}-\d\d-\d\d(?:&(?:amp;)?[A-Za-z]{1,12}=[^&\s\"'<>;#]{0,1024}){0,40}"
)
_SAS_SIG = re.compile(r"(?i)\b(sig=)" + _NOT_MARKER + r"([^&\s\"'<>;#]{3,1024})")

# user:password@host in any URL (jdbc:, odbc:, https:, mongodb+srv:, ...).
_URL_USERINFO = re.compile(r"(://[^/\s:@\"'<>;]{0,256}:)" + _NOT_MARKER + r"([^/\s@\"'<>;]{1,512})(@)")

# Authorization headers, whatever the scheme; then bare 'Bearer <token>'.
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s{0,3}[:=]\s{0,3}[\"']?)" + _NOT_MARKER
    + r"((?:bearer|basic|token|sharedkey|sharedaccesssignature|sas)\s{1,3})?([^\s\"',;]{1,4096})"
)
_BEARER = re.compile(r"(?i)\b(bearer\s{1,3})" + _NOT_MARKER + r"([A-Za-z0-9\-._~+/]{8,4096}=*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{4,4096}\.[A-Za-z0-9_\-]{4,8192}\.[A-Za-z0-9_\-]{0,4096}")

# Vendor token shapes (prefix + fixed alphabet): cheap to find, unambiguous to redact.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:dapi|dose|doau|dkea)[0-9a-h]{32,64}(?:-\d{1,3})?\b"), "databricks-token"),
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA|ANPA|ANVA|APKA|AGPA|AIPA)[A-Z0-9]{16}\b"), "aws-access-key-id"),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{30,255}\b"), "github-token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"), "github-token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,64}\b"), "gitlab-token"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,255}"), "slack-token"),
    (re.compile(r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{32,255}"), "api-key"),
    (re.compile(r"\bAIza[A-Za-z0-9_\-]{35}\b"), "google-api-key"),
    # Entra ID (Azure AD) client secrets: 3 chars, a digit, 'Q~', then 31-34 chars.
    (re.compile(r"(?<![A-Za-z0-9_~.\-])[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])"),
     "azure-client-secret"),
    # Azure Function / APIM keys in a URL query.
    (re.compile(r"(?<=[?&])(?:code|subscription-key)=[A-Za-z0-9_\-%]{20,256}={0,2}"), "function-key"),
    # A bare 64-byte key in base64 (Azure Storage / Cosmos DB account keys): 86 chars + '=='.
    (re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"), "storage-key"),
)

# AWS secret keys are 40 chars of base64 after a recognisable name.
_AWS_SECRET = re.compile(
    r"(?i)\b(aws_?secret_?(?:access_?)?key|secret_?access_?key|fs\.s3a?\.(?:awsSecretAccessKey|secret\.key))"
    r"(?=[\"'\s:=,])([\"']?\s{0,3}[:=,]?\s{0,3}[\"']?)" + _NOT_MARKER + r"([A-Za-z0-9/+=]{16,128})"
)

# Generic assignments: <something>password = value, "client_secret": "value", token: value.
_STRONG_KEYWORDS = (
    r"password|passwd|passphrase|secret|token|api[_\-]?key|apikey|access[_\-]?key|account[_\-.]?key|"
    r"private[_\-]?key|signing[_\-]?key|subscription[_\-]?key|credentials?"
)
_WEAK_KEYWORDS = r"pass|pwd|sas"  # only as a whole word or after a separator (DB_PASS, not bypass)
_ASSIGN = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:(?:[A-Za-z0-9]{0,24}[_\-.]?)?(?:" + _STRONG_KEYWORDS + r")"
    r"|(?:[A-Za-z0-9]{0,24}[_\-.])?(?:" + _WEAK_KEYWORDS + r"))"
    r"s?(?:[_\-.][A-Za-z0-9]{1,20}){0,8})"
    r"([\"']?\s{0,3}(?:=|:(?!//))\s{0,3}|[\"']\s{0,3},\s{0,3}(?=[\"']))" + _NOT_MARKER
    + r"(\"[^\"\n]{0,1024}\"|'[^'\n]{0,1024}'|[^" + _VALUE_END + r"]{1,1024})"
)
# Key names whose values are not secrets although the name says "token"/"key".
_BENIGN_KEY = re.compile(
    r"(?i)(?:tokens|page_?token|idempotency_?token|token_?(?:type|count|limit|usage|endpoint|url|uri)|"
    r"credentials?_?(?:type|provider|scope)|secret_?(?:scope|name|ref|id)|sas_?(?:url_?)?expiry|"
    r"password_?(?:policy|expiry|expired|reset|length)|tokenizer|"
    r"[_.](?:type|class|impl|provider|provider[_.]type|enabled|mode))$"
)
# Whole words of a mapping key that name a secret (the short forms of _WEAK_KEYWORDS, and more).
_WEAK_KEY_WORDS = frozenset({"pass", "passwd", "pwd", "pw", "sas", "creds"})
_PLAIN_WORD = re.compile(r"[A-Za-z][a-z]{0,11}")
# The Azure SDK's credential class names ("Attempted credentials: EnvironmentCredential: ..."):
# text, not a value, after "credentials:".
_SDK_CREDENTIAL_NAME = re.compile(r"(?:[A-Z][a-z]{1,15}){1,5}Credential:?")
# Command-line flags: --password hunter2, --db-token xyz.
_FLAG = re.compile(
    r"(?i)(?<![A-Za-z0-9])(--?(?:[a-z]{1,12}-)?(?:password|passwd|pwd|token|secret|api-?key|client-?secret)"
    r"\s{1,3})" + _NOT_MARKER + r"([^\s\"'-][^\s\"']{0,1023})"
)


def _sub_conn(m: re.Match[str]) -> str:
    kind = _CONN_KIND.get(m.group(1).lower(), "password")
    return f"{m.group(1)}{m.group(2)}{_marker(kind)}"


def _sub_auth(m: re.Match[str]) -> str:
    scheme = m.group(2) or ""
    kind = "bearer-token" if scheme.lower().startswith("bearer") else "authorization"
    return f"{m.group(1)}{scheme}{_marker(kind)}"


def _sub_assign(m: re.Match[str]) -> str:
    name, sep, value = m.group(1), m.group(2), m.group(3)
    if _BENIGN_KEY.search(name):
        return m.group(0)
    quoted = value[:1] in ("'", '"')
    inner = value[1:-1] if quoted else value
    if not inner or inner.startswith(MARKER_PREFIX) or inner.lower() in ("true", "false", "null", "none"):
        return m.group(0)
    if not quoted and m.string[m.end():m.end() + 1] == "(":
        return m.group(0)  # source code in a traceback: token = get_token()
    if ":" in sep and not quoted and _PLAIN_WORD.fullmatch(inner):
        # 'secret: scope', 'Token: Expired', 'credential: Any': a plain short word after a colon is text.
        return m.group(0)
    if ":" in sep and not quoted and _SDK_CREDENTIAL_NAME.fullmatch(inner) and "credential" in name.lower():
        # 'Attempted credentials: EnvironmentCredential:', 'ManagedIdentityCredential: ManagedIdentityCredential
        # authentication unavailable' (azure-identity's own report): a class name, not a secret.
        return m.group(0)
    lname = name.lower()
    if "pass" in lname or "pwd" in lname:
        kind = "password"
    elif "token" in lname:
        kind = "token"
    elif "key" in lname:
        kind = "api-key"
    else:
        kind = "secret"
    q = value[0] if quoted else ""
    return f"{name}{sep}{q}{_marker(kind)}{q}"


def _build_steps() -> tuple[tuple[re.Pattern[str], Any], ...]:
    steps: list[tuple[re.Pattern[str], Any]] = [
        (_PRIVATE_KEY, _marker("private-key")),
        (_SAS_QUERY, _marker("sas-token")),
        (_CONN_SECRET, _sub_conn),
        (_SAS_SIG, lambda m: m.group(1) + _marker("sas-signature")),
        (_URL_USERINFO, lambda m: m.group(1) + _marker("url-password") + m.group(3)),
        (_AUTH_HEADER, _sub_auth),
        (_JWT, _marker("jwt")),
        (_BEARER, lambda m: m.group(1) + _marker("bearer-token")),
        (_AWS_SECRET, lambda m: m.group(1) + m.group(2) + _marker("aws-secret-key")),
    ]
    steps.extend((pattern, _marker(kind)) for pattern, kind in _SHAPES)
    steps.append((_FLAG, lambda m: m.group(1) + _marker("secret")))
    steps.append((_ASSIGN, _sub_assign))
    return tuple(steps)


_STEPS = _build_steps()

# Cheap pre-check: text without any of these can hold none of the secrets above.
_TRIGGER = re.compile(
    r"(?i)PRIVATE KEY|sv=|sig=|key|pass|pwd|secret|token|signature|://|auth|bearer|eyJ|dapi|dose|doau|dkea|"
    r"AKIA|ASIA|A[BCGINPR][A-Z]A|gh[pousr]_|github_pat_|glpat-|xox|sk-|AIza|Q~|code=|credential|sas|[A-Za-z0-9+/]{86}=="
)


def redact(text: str) -> str:
    """Return ``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``."""
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    if not _TRIGGER.search(text):
        return text
    for pattern, repl in _STEPS:
        text = pattern.sub(repl, text)
    return text


def is_sensitive_key(key: str) -> bool:
    """True when a mapping key names a secret (``password``, ``clientSecret``, ``api-key``,
    ``fs.azure.account.key.<acct>…``, ``DB_PASSWORD``, ``access_token``, ...)."""
    k = str(key)
    if _BENIGN_KEY.search(k) or _BENIGN_KEY.search(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", k)):
        return False
    flat = re.sub(r"[^a-z0-9]", "", k.lower())
    if flat in ("sig", "pwd", "sas", "authorization", "cookie", "setcookie"):
        return True
    # Short names count only as a whole word: DB_PWD, SNOWFLAKE_PASS, dbPass, API_CREDS (not bypass).
    words = re.split(r"[^a-z0-9]+", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", k).lower())
    if any(w in _WEAK_KEY_WORDS for w in words):
        return True
    return any(
        w in flat
        for w in (
            "password", "passwd", "passphrase", "secret", "token", "apikey", "accountkey", "accesskey",
            "privatekey", "signingkey", "subscriptionkey", "sharedaccesskey", "connectionstring",
            "connstr", "credential", "sastoken",
        )
    )


def redact_obj(obj: Any, *, _depth: int = 0) -> Any:
    """Deep-redact dicts, lists, tuples and strings; values under a sensitive key are replaced
    whole (``{"password": "x"}`` -> ``{"password": "[REDACTED:password]"}``). Returns a new
    object; the input is not modified. Other types pass through unchanged."""
    if _depth > 64:
        return _marker("too-deep")
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            key = redact(k) if isinstance(k, str) else k
            if isinstance(k, str) and isinstance(v, str) and v and is_sensitive_key(k) \
                    and not v.startswith(MARKER_PREFIX):
                out[key] = _marker(_kind_for_key(k))
            else:
                out[key] = redact_obj(v, _depth=_depth + 1)
        return out
    if isinstance(obj, list):
        return [redact_obj(v, _depth=_depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_obj(v, _depth=_depth + 1) for v in obj)
    if isinstance(obj, (set, frozenset)):
        return type(obj)(redact_obj(v, _depth=_depth + 1) for v in obj)
    return obj


def _kind_for_key(key: str) -> str:
    flat = re.sub(r"[^a-z0-9]", "", key.lower())
    if "pass" in flat or "pwd" in flat:
        return "password"
    if "token" in flat or flat in ("authorization", "sig"):
        return "token"
    if "key" in flat:
        return "api-key"
    return "secret"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message, its arguments and any formatted traceback.

    Put it on a handler (it then sees every record that handler emits, whichever logger it
    came from) or on a logger (it then sees records logged on that logger directly). It never
    drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format: keep what we can, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Install one ``RedactingFilter`` on ``logger`` (the root logger by default) and on each of
    its handlers. Idempotent: a second call reuses the filter already installed."""
    target = logger if logger is not None else logging.getLogger()
    existing = next((f for f in target.filters if isinstance(f, RedactingFilter)), None)
    filt = existing or RedactingFilter()
    if existing is None:
        target.addFilter(filt)
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(filt)
    return filt
