#!/usr/bin/env bash
# The test suite: fetches the model weights if absent, runs every test of the workspace
# (unit, integration, doctests; the end-to-end tests use the real model), then builds and runs
# the examples.
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"

cargo test --workspace
cargo run --quiet -p example-sync-folder -- examples/sample-space "how do I roll back a deploy?"
cargo run --quiet -p example-custom-fetcher
echo "examples: 2 passed, 0 failed"
