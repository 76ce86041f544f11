"""The ACS email endpoint over real HTTPS on loopback, for tests that run a worker subprocess.

A subprocess cannot use azure-core's transport hook, and the ACS SDK insists on ``https://``, so
``AcsEmailServer`` puts ``tests.fakes.azure_services.AcsEmailService`` (the same wire logic the
in-process tests use: repeatable requests, faults, hold points, a movable clock) behind a TLS
server on 127.0.0.1 with a certificate minted for this run:

- ``mint_certificate(dir)``: a throw-away CA and a server certificate for ``127.0.0.1``
  (``cryptography``, already installed for azure-identity); nothing is written outside ``dir``.
- ``AcsEmailServer(dir).start()``: ``.service`` is the ``AcsEmailService`` (its ``endpoint`` is
  ``https://127.0.0.1:PORT``), ``.env()`` what a worker needs to send through it:
  ``ACS_CONNECTION_STRING`` (read from the environment by ``shared.secrets`` when no Key Vault is
  set) and ``REQUESTS_CA_BUNDLE`` (azure-core's requests transport trusts the CA through it:
  ``requests`` reads it when the session trusts the environment, which azure-core's default
  ``use_env_settings=True`` keeps on).

A ``Dropped`` answer (a ``DROP`` fault, a released hold) closes the connection without a byte.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from azure.core.utils import case_insensitive_dict

from tests.fakes.azure_services import AcsEmailService, Dropped, SeenRequest, _body_json

__all__ = ["AcsEmailServer", "mint_certificate"]


def mint_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key) as PEM files in ``directory``: a
    CA valid for a day and a server certificate for IP 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "triage tests ACS stand-in CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem, chain_pem, key_pem = directory / "acs-ca.pem", directory / "acs-server.pem", directory / "acs-server.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, chain_pem, key_pem


@dataclass
class _WireRequest:
    """What ``AcsEmailService`` reads of a request, built from the bytes that arrived."""

    method: str
    url: str
    headers: Any
    content: bytes


class AcsEmailServer:
    """``AcsEmailService`` behind HTTPS on 127.0.0.1 (a random port). ``requests`` records every
    request that arrived (as ``SeenRequest``)."""

    def __init__(self, directory: Path) -> None:
        self.ca_bundle, chain, key = mint_certificate(Path(directory))
        self.access_key = secrets.token_bytes(32)          # made up for this run
        self.requests: list[SeenRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = case_insensitive_dict({k: v for k, v in self.headers.items()})
                req = _WireRequest(self.command, f"https://{self.headers.get('Host')}{self.path}", headers, body)
                with server._lock:
                    server.requests.append(SeenRequest(req.method, req.url, dict(headers), _body_json(req)))
                try:
                    resp = server.service(req)
                except Dropped:
                    self.close_connection = True
                    return
                data = resp.content or b""
                self.send_response(resp.status_code, resp.reason)
                for k, v in resp.headers.items():
                    if k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self.service = AcsEmailService(f"https://127.0.0.1:{self.port}", access_key=self.access_key)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return self.service.endpoint

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.endpoint}/;accesskey={base64.b64encode(self.access_key).decode('ascii')}"

    def env(self) -> dict[str, str]:
        """What a worker process needs to send through this server."""
        return {"ACS_CONNECTION_STRING": self.connection_string, "REQUESTS_CA_BUNDLE": str(self.ca_bundle)}

    def start(self) -> "AcsEmailServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="acs-https", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.service.release.set()          # a held request ends
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
