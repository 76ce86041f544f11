"""Fixtures for the databricks area (filled by that area's work)."""
