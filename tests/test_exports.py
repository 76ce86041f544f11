"""Private by default: every module of the package says what it exports, and exports only what exists."""

import importlib
import pkgutil

import pytest

import shared

MODULES = sorted(
    ["shared"] + [m.name for m in pkgutil.walk_packages(shared.__path__, "shared.") if not m.name.endswith("__main__")]
)


@pytest.mark.parametrize("name", MODULES)
def test_exports_module_declares_all_and_names_exist(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), (list, tuple)), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats a name"


def test_exports_every_command_registers_itself():
    from shared.cli import COMMANDS

    for name in COMMANDS:
        assert callable(importlib.import_module(f"shared.commands.{name}").register)
