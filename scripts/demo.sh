#!/usr/bin/env bash
# The main job on the embedded defaults, with no credentials: fetches the model weights if
# absent, ingests the bundled sample space into ./docbrain-data, and answers a question.
# Usage: scripts/demo.sh ["your question"]
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"
export LOCAL_DOCS_PATH="${LOCAL_DOCS_PATH:-examples/sample-space}"
export DOCBRAIN_DATA_DIR="${DOCBRAIN_DATA_DIR:-./docbrain-data}"

cargo build --quiet -p docbrain-cli
docbrain=target/debug/docbrain

"$docbrain" ingest
echo
"$docbrain" search "${1:-how do I roll back a bad deploy?}" --top 3
"$docbrain" status
