"""Shared test fixtures. Fixtures of each area live in tests/plugins/<area>.py."""

pytest_plugins = [
    "tests.plugins.environment",
    "tests.plugins.azurite",
    "tests.plugins.databricks",
    "tests.plugins.openai",
    "tests.plugins.learning",
    "tests.plugins.crash",
    "tests.plugins.app",
]
