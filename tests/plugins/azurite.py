"""Fixtures for the azurite area (filled by that area's work)."""
