#!/usr/bin/env bash
# The test suite: fetches the model weights if absent, starts a local OpenSearch node unless one
# answers already (scripts/opensearch.sh; stopped again at the end), runs every test of the
# workspace (unit, integration, doctests; the end-to-end tests use the real model and the real
# node), then builds and runs the examples.
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"
export OPENSEARCH_URL="${OPENSEARCH_URL:-http://127.0.0.1:9200}"

started_opensearch=""
if ! curl -fsS "$OPENSEARCH_URL/_cluster/health" >/dev/null 2>&1; then
  scripts/opensearch.sh start
  started_opensearch=1
fi
stop_opensearch() { if [ -n "$started_opensearch" ]; then scripts/opensearch.sh stop; fi; }
trap stop_opensearch EXIT

cargo test --workspace
cargo run --quiet -p example-sync-folder -- examples/sample-space "how do I roll back a deploy?"
cargo run --quiet -p example-custom-fetcher
echo "examples: 2 passed, 0 failed"
