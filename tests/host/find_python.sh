#!/bin/sh
# Print the path of a Python 3.13 or newer for the worker tests (tests/host), or nothing.
# Looks for python3.13 / python3.14 on PATH (a pyenv shim that is not active fails the check and
# is skipped), then under pyenv's versions folder (newest first). The Functions Python worker
# library (azure-functions-runtime) needs 3.13+; 3.13 is what the app is deployed on.
ok() { "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 13))' >/dev/null 2>&1; }
for name in python3.13 python3.14; do
  path=$(command -v "$name" 2>/dev/null) && ok "$path" && { echo "$path"; exit 0; }
done
root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for dir in $(ls -d "$root"/versions/3.1[3-9]* 2>/dev/null | sort -r -V); do
  ok "$dir/bin/python3" && { echo "$dir/bin/python3"; exit 0; }
done
exit 0
