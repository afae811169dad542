#!/usr/bin/env bash
# Installs the official Python MCP SDK (PyPI `mcp`, pinned) into a virtual environment cached
# at .cache/mcp-venv, for the tests that drive the MCP front door with a real client; prints
# the environment's python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=2.3.0
VENV="$PWD/.cache/mcp-venv"
if [ "$(cat "$VENV/.mcp-version" 2>/dev/null)" != "$VERSION" ]; then
  echo "mcp-sdk.sh: installing mcp==$VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==$VERSION" >&2
  echo "$VERSION" >"$VENV/.mcp-version"
fi
echo "$VENV/bin/python"
