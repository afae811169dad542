#!/usr/bin/env bash
# The README's simulator steps, run as written (on free ports, in a temporary folder) and
# checked: the simulator loads the whole sample space plus the hr-only page, the crawl indexes
# them all, `--as bob` finds the restricted page and `--as alice` does not, an edit made through
# the simulator reaches the server as a signed webhook and is searchable within seconds, and an
# anonymous /search never shows the restricted page. scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sim_port=$(free_port)
server_port=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
check() { # check NAME CONDITION-COMMAND...
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); else echo "readme-simulator: FAILED: $name" >&2; exit 1; fi
}
wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

cargo build --quiet -p docbrain-cli -p docbrain-server
cargo build --quiet -p docbrain-confluence --features simulator --example confluence-simulator

target/debug/examples/confluence-simulator --port "$sim_port" \
    --from examples/sample-space \
    --webhook-url "http://127.0.0.1:$server_port/confluence/events" --webhook-secret sim-webhook-secret \
    2>"$work/sim.log" &
pids+=($!)
check "the simulator starts" wait_for 30 grep -q "ctrl-c stops it" "$work/sim.log"
check "it loads the whole sample space, its attachments and the hr-only page" grep -q "21 pages (2 attachments) in space ENG" "$work/sim.log"

export SOURCE_TYPE=confluence DOCBRAIN_DATA_DIR="$work/docbrain-sim" CONFLUENCE_API_VERSION=v1 \
       CONFLUENCE_BASE_URL="http://127.0.0.1:$sim_port" CONFLUENCE_API_TOKEN=sim-personal-access-token \
       CONFLUENCE_ANONYMOUS_ACCESS=true LOG_LEVEL=warn
target/debug/docbrain ingest >"$work/ingest.out"
check "the crawl indexes every page" grep -q "Ingestion complete: 21 pages" "$work/ingest.out"

target/debug/docbrain search "salary bands" --as bob >"$work/bob.out"
check "bob (hr) finds the restricted page" grep -q "^1\. Salary bands" "$work/bob.out"
target/debug/docbrain search "salary bands" --as alice >"$work/alice.out"
check "alice (not hr) does not, though she finds other pages" bash -c "grep -q '^1\. ' '$work/alice.out' && ! grep -q 'Salary bands' '$work/alice.out'"
target/debug/docbrain search "how often does the disaster recovery drill run" --as alice --top 3 >"$work/drill.out"
check "an answer only inside an attached PDF is found" grep -q "disaster-recovery-drill.pdf" "$work/drill.out"

SERVER_PORT=$server_port SERVER_BIND=127.0.0.1 CONFLUENCE_WEBHOOK_SECRET=sim-webhook-secret \
    target/debug/docbrain-server >/dev/null 2>"$work/server.log" &
pids+=($!)
check "the server is ready" wait_for 60 curl -fs "http://127.0.0.1:$server_port/readyz" -o /dev/null

curl -fs -X POST "http://127.0.0.1:$sim_port/_sim/pages?title=Salary+bands" \
     --data '<p>Salary bands are reviewed every October now.</p>' >"$work/edit.json"
check "the simulator signs and delivers page_updated" grep -q '"status":200' "$work/edit.json"
bob_sees_edit() {
  target/debug/docbrain search "when are salary bands reviewed" --as bob 2>/dev/null | grep -q "October"
}
check "bob finds the new text within seconds" wait_for 20 bob_sees_edit
curl -fs "http://127.0.0.1:$server_port/search?q=when+are+salary+bands+reviewed" >"$work/anonymous.json"
check "an anonymous search finds pages, never the hr-only one" bash -c "grep -q '\"page_id\"' '$work/anonymous.json' && ! grep -q 'Salary bands' '$work/anonymous.json'"

echo "readme-simulator: $passed passed, 0 failed"
