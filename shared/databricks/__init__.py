"""Databricks: the Jobs API client (``client``), what a failure looks like (``capture``: reads)
and what we do about it (``actions``: writes). See docs/databricks.md."""

from __future__ import annotations

from shared.databricks.client import *  # noqa: F403 - the client is this area's public face
from shared.databricks.client import __all__  # noqa: F401
