"""Rows of the rules table that look past the text: fixed conditions that veto a transient reading
(kind ``VETO``) and what the cluster's events said (kind ``CLUSTER_EVENT``). Part of
``shared.decide.rules`` (which documents the row format); kept here so each module stays small."""

from __future__ import annotations

import re

from shared.models import Category, EvidenceKind
from shared.decide._rule import R, Rule

__all__ = ["VETO_ROWS", "CLUSTER_EVENT_ROWS"]

C = Category
K = EvidenceKind


def _host_never_resolves(m: re.Match) -> bool:
    """A bare machine name (no domain, not an address, not localhost) cannot resolve from a
    cluster's network: a workstation name, or a container name from someone's compose file."""
    raw = m.group("host")
    host = raw.strip("\"'")
    if host.startswith("<"):   # a placeholder someone put in for the real name: we cannot tell
        return False
    return bool(host) and "." not in host and ":" not in host and host.lower() != "localhost"


VETO_ROWS: tuple[Rule, ...] = (
    # ---- fixed conditions that veto a transient reading (kind VETO) ----------------------------
    R("veto.auth-failed", K.VETO,
      r"\b(authentication|auth) (has )?(failed|failure)\b|\bLogin failed for user\b|\bpassword authentication failed\b|"
      r"\bAccess denied for user\b|\bSaslAuthenticationException\b|\binvalid[_ ]client\b|\binvalid_grant\b|\bAADSTS\d{4,}|"
      r"\binvalid (username|user name|credentials?)\b|\b(incorrect|wrong) (username|user name|password)\b|"
      r"\bUNAUTHENTICATED\b|\b401\b[^\n]{0,20}\bUnauthori[sz]ed\b|\bUnauthori[sz]ed\b[^\n]{0,20}\b401\b|"
      r"\b(token|credentials?|client secret|secret|password) (has |have |is )?expired\b|"
      r"\bexpired (access )?(token|credentials?|client secret|password)\b|"
      r"\b(HTTP )?(response|status)[ _-]?code\W{0,3}40[13]\b|\btoo many 40[13] error responses\b",
      C.PERMISSION, 0.9,
      'java.net.SocketException: Connection reset\nCaused by: org.postgresql.util.PSQLException: FATAL: password '
      'authentication failed for user "etl"'),
    R("veto.tls", K.VETO,
      r"\bPKIX path (building|validation) failed\b|\bunable to find valid certification path\b|"
      r"\bCERTIFICATE_VERIFY_FAILED\b|\bcertificate verify failed\b|\bself[- ]signed certificate\b|"
      r"\bunable to get local issuer certificate\b|\bcertificate (has )?expired\b|\bNo subject alternative (DNS )?names?\b|"
      r"\bdoes(n't| not) match any of the subject alternative names\b|\bhostname .{1,120}? (doesn't|does not|did not) match\b|"
      r"\bhandshake_failure\b|\bprotocol_version\b|\bNo appropriate protocol\b|\bwrong version number\b|"
      r"\bunsupported protocol\b|\bReceived fatal alert: (handshake_failure|protocol_version|certificate_\w+|bad_certificate)\b|"
      r"\btrustServerCertificate\b|\bcertificate (is not trusted|not trusted|chain)\b|"
      r"\bCertificate(Expired|NotYetValid)?Exception\b|\bvalidate the server name in a certificate\b",
      C.CONFIGURATION, 0.9,
      "javax.net.ssl.SSLHandshakeException: PKIX path building failed: unable to find valid certification path to "
      "requested target"),
    R("veto.proxy", K.VETO,
      r"\bProxyError\b|\bUnable to connect to proxy\b|\bCannot connect to proxy\b|\b407 Proxy Authentication Required\b|"
      r"\bTunnel connection failed\b|\bproxy (authentication|configuration) (failed|error|is invalid)\b",
      C.CONFIGURATION, 0.88,
      "requests.exceptions.ProxyError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded "
      "(Caused by ProxyError('Unable to connect to proxy', OSError('Tunnel connection failed: 403 Forbidden')))"),
    R("veto.host-never-resolves", K.VETO,
      r"(?:\bUnknownHostException: |\bto the host |\bcould not translate host name |\bFailed to resolve '?)"
      r"(?P<host>[\"'<]?[A-Za-z][\w\-]*[>\"']?)(?=[\s,:'\"]|$)",
      C.CONFIGURATION, 0.88,
      "com.microsoft.sqlserver.jdbc.SQLServerException: The TCP/IP connection to the host DESKTOP-4F2K, port 1433 "
      "has failed. Error: Connection refused.", check=_host_never_resolves),
    R("veto.endpoint-missing", K.VETO,
      r"\bENDPOINT_NOT_FOUND\b|\bNo API found for\b|\btoo many 404 error responses\b|"
      r"\bnot (available|supported|allowed) (on|in|for|with) (serverless|shared|this) (compute|clusters?|access mode|workspace)\b|"
      r"\b(denied|blocked) by (the )?(network|egress|serverless network) polic(y|ies)\b|"
      r"\bnetwork polic(y|ies)\b[^\n]{0,80}\b(denied|blocked|not allowed)\b|"
      r"\bprivate (link|endpoint)\b[^\n]{0,60}\b(not (configured|approved)|rejected)\b",
      C.CONFIGURATION, 0.88,
      "ConnectionError: ('Connection aborted.') ... Access to storage.example.com is denied by network policy"),
    R("veto.client-non-retryable", K.VETO,
      r"\bno-retry-reason=non-retryable\b|\bnon-retryable error\b",
      C.CONFIGURATION, 0.85,
      "Error during request to server. Error properties: attempt=1/30, method=OpenSession, "
      "no-retry-reason=non-retryable error"),
    R("veto.incompatible-version", K.VETO,
      r"\bNoSuchMethodError\b|\bNoClassDefFoundError\b(?!: Could not initialize class)|\bClassNotFoundException\b|"
      r"\bIncompatibleClassChangeError\b|\bAbstractMethodError\b|\bUnsupportedClassVersionError\b|\bNoSuchFieldError\b|"
      r"\b(client|driver|server|protocol|API) version\b[^\n]{0,80}\b(is not supported|not supported|incompatible|unsupported|"
      r"too old|no longer supported)\b|\b(incompatible|unsupported) (client|driver|server|protocol) version\b|"
      r"\bthis client only supports\b|\bIncompatible [\w.\-]{1,40} version\b",
      C.DEPENDENCY, 0.9,
      "java.util.concurrent.TimeoutException: Futures timed out after [300 seconds]\n"
      "Caused by: java.lang.NoSuchMethodError: 'scala.collection.immutable.Seq org.apache.spark.sql.types.StructType.toAttributes()'",
      False),

)

CLUSTER_EVENT_ROWS: tuple[Rule, ...] = (
    # ---- cluster events (clusters/events of the task's job cluster: event type or reason code) ------
    R("event.driver-not-responding", K.CLUSTER_EVENT, r"DRIVER_NOT_RESPONDING|DRIVER_UNAVAILABLE|DRIVER_OUT_OF_MEMORY",
      C.RESOURCE, 0.85, "DRIVER_NOT_RESPONDING"),
    R("event.nodes-lost", K.CLUSTER_EVENT, r"NODES_LOST|NODE_EXCLUDED_DECOMMISSIONED|INSTANCE_UNREACHABLE",
      C.INFRASTRUCTURE, 0.85, "NODES_LOST"),
    R("event.spot-loss", K.CLUSTER_EVENT, r"SPOT_INSTANCE_TERMINATION|.*PREEMPT.*|.*SPOT.*(LOSS|LOST|TERMINAT|RECLAIM).*",
      C.INFRASTRUCTURE, 0.92, "SPOT_INSTANCE_TERMINATION"),
    R("event.init-script", K.CLUSTER_EVENT, r"INIT_SCRIPT_FAILURE|.*INIT_SCRIPT.*FAIL.*",
      C.CONFIGURATION, 0.9, "INIT_SCRIPT_FAILURE"),
    R("event.platform-down", K.CLUSTER_EVENT, r"DBFS_DOWN|METASTORE_DOWN|METASTORE_COMPONENT_UNHEALTHY",
      C.INFRASTRUCTURE, 0.88, "METASTORE_DOWN"),
    R("event.cloud-failure", K.CLUSTER_EVENT,
      r"CLOUD_PROVIDER_LAUNCH_FAILURE|CLOUD_PROVIDER_SHUTDOWN|.*INSUFFICIENT_INSTANCE_CAPACITY.*|.*RESOURCE_STOCKOUT.*|"
      r"ADD_NODES_FAILED|COMMUNICATION_LOST|DRIVER_UNREACHABLE",
      C.INFRASTRUCTURE, 0.9, "CLOUD_PROVIDER_LAUNCH_FAILURE"),
    R("event.disk", K.CLUSTER_EVENT, r"FAILED_TO_EXPAND_DISK|DID_NOT_EXPAND_DISK", C.RESOURCE, 0.8, "FAILED_TO_EXPAND_DISK"),

)
