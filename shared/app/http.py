"""HTTP answers, built one way for every endpoint: JSON with no-store headers, or a small
self-contained HTML page (escaped, with a strict content security policy)."""

from __future__ import annotations

import html
import json
from typing import Any, Mapping

import azure.functions as func

__all__ = ["JSON_HEADERS", "HTML_HEADERS", "json_response", "html_page", "status_and_json"]

JSON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",     # a token may be in the URL
    "Cache-Control": "no-store",
}


def json_response(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
                  ) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload, ensure_ascii=False), status_code=status,
                             mimetype="application/json", charset="utf-8",
                             headers={**JSON_HEADERS, **(headers or {})})


def html_page(status: int, title: str, paragraphs: list[str], *, form: str = "",
              headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """A small self-contained HTML page; ``title`` and ``paragraphs`` are plain text, escaped here.
    ``form`` is markup the caller built (and escaped) itself."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    doc = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f5f6f8;color:#1f2328}"
        "main{max-width:36rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;"
        "box-shadow:0 1px 3px rgba(0,0,0,.12)}h1{font-size:1.3rem;margin-top:0}p{line-height:1.5}"
        "button{font-size:1rem;padding:.5rem 1.2rem;border-radius:6px;border:1px solid #1f6feb;"
        "background:#1f6feb;color:#fff;cursor:pointer}"
        "</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1>{body}{form}</main></body></html>"
    )
    return func.HttpResponse(doc, status_code=status, mimetype="text/html", charset="utf-8",
                             headers={**HTML_HEADERS, **(headers or {})})


def status_and_json(response: func.HttpResponse) -> tuple[int, dict[str, Any]]:
    """(status, parsed JSON body) of a JSON answer: for callers that report it (the demo, tests)."""
    return response.status_code, json.loads(response.get_body() or b"{}")
