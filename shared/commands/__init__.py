"""One module per command: each has register(subparsers)."""

__all__: list[str] = []
