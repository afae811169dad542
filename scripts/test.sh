#!/usr/bin/env bash
# The test suite. Fetches the model weights if absent and starts a local OpenSearch node unless
# one answers already (scripts/opensearch.sh; stopped again at the end), then runs:
#   1. `cargo test --workspace`: every test a fresh clone runs, with no node and no ../shared;
#   2. the tests marked #[ignore] because they need the real node or the Python MCP SDK
#      (scripts/mcp-sdk.sh installs it), plus (when ../shared is beside the checkout) the checks
#      against the captured Confluence fixtures;
#   3. the README's simulator steps (scripts/readme-simulator.sh) and the Forge relay's checks
#      (scripts/forge-test.sh);
#   4. the examples.
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"
export OPENSEARCH_URL="${OPENSEARCH_URL:-http://127.0.0.1:9200}"
export DOCBRAIN_MCP_PYTHON="${DOCBRAIN_MCP_PYTHON:-$(scripts/mcp-sdk.sh | tail -n 1)}"

started_opensearch=""
if ! curl -fsS "$OPENSEARCH_URL/_cluster/health" >/dev/null 2>&1; then
  scripts/opensearch.sh start
  started_opensearch=1
fi
stop_opensearch() { if [ -n "$started_opensearch" ]; then scripts/opensearch.sh stop; fi; }
trap stop_opensearch EXIT

echo "== tests (what cargo test runs on a fresh clone)"
cargo test --workspace

captured="$(cd .. && pwd)/shared/fixtures/confluence"
skip=()
if [ -d "$captured" ]; then
  export DOCBRAIN_CAPTURED_FIXTURES="$captured"
  echo "== tests that need the OpenSearch node at $OPENSEARCH_URL or the MCP SDK, and the captured-fixture checks ($captured)"
else
  skip=(--skip captured_)
  echo "== tests that need the OpenSearch node at $OPENSEARCH_URL or the MCP SDK (no $captured: captured-fixture checks skipped)"
fi
cargo test --workspace -- --ignored "${skip[@]}"

echo "== the README's simulator steps"
scripts/readme-simulator.sh

echo "== the Forge relay (manifest validated offline; events replayed against the server)"
scripts/forge-test.sh

echo "== examples"
cargo run --quiet -p example-sync-folder -- examples/sample-space "how do I roll back a deploy?"
cargo run --quiet -p example-custom-fetcher
cargo run --quiet -p example-from-settings -- "how do I roll back a deploy?"
echo "examples: 3 passed, 0 failed"
