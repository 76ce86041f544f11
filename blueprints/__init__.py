"""Azure Functions triggers, one module per trigger, each a ``func.Blueprint`` named ``bp``.

Each trigger only adapts its input to one ``shared`` service function and maps the outcome to an
HTTP status or a re-raise (so the host retries). No I/O happens at import: settings, secrets,
clients and SDKs are read and built when a function runs.
"""
