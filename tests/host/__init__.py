"""The app under the real Azure Functions Python worker (``azure-functions-runtime``, Python 3.13+),
driven by a host stand-in speaking the FunctionRpc protocol. ``make test`` runs this folder in a
second virtual environment (``.venv-worker``) when a Python 3.13+ is on the machine."""
