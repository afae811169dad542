#!/usr/bin/env bash
# The Forge relay's checks, with no Atlassian account: installs its npm packages (Forge's
# manifest validator among them), validates forge/manifest.yml offline, and runs its tests,
# end to end against the debug builds of docbrain-server and the Confluence simulator (built
# here if missing). scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"
cargo build --quiet -p docbrain-server
cargo build --quiet -p docbrain-confluence --features simulator --example confluence-simulator
cd forge
npm ci --no-audit --no-fund --loglevel=error
node scripts/validate-manifest.js
DOCBRAIN_BIN_DIR="$(cd .. && pwd)/target/debug" node --test test/
