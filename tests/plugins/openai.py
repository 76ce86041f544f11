"""Fixtures for the openai area (filled by that area's work)."""
