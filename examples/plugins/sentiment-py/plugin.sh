#!/bin/sh
# Starts the sentiment-py plugin from this source tree, for the pipelines in
# configs/ (plugin: ../examples/plugins/sentiment-py/plugin.sh). sluice
# gives a plugin no PATH and no VIRTUAL_ENV, so the interpreter is found
# here: .venv next to this file (see README.md), else the sluice tree's
# development virtualenv (.cache/python, made by scripts/deps.sh).
here=$(cd "$(dirname "$0")" && pwd)
for py in "$here/.venv/bin/python" "$here/../../../.cache/python/bin/python"; do
  if [ -x "$py" ]; then
    PYTHONPATH="$here" exec "$py" -m sentiment.plugin "$@"
  fi
done
echo "sentiment-py: no Python with the sluice_plugin package: create $here/.venv (python3 -m venv .venv && .venv/bin/pip install ../../../plugins/python) or run scripts/deps.sh" >&2
exit 1
