#!/usr/bin/env bash
# Smoke-tests a built image (default docbrain-sync:latest) with docker, podman or buildah:
#   1. `docbrain ingest` of the mounted sample space as the image's non-root user, then a search;
#   2. `docbrain-server` with the webhook on, the Confluence simulator (run here with cargo) as
#      Confluence: a signed Data Center delivery is answered 200 and the page becomes searchable,
#      an unsigned one is refused with 401, and the Compose healthcheck passes.
# Containers use the host network; ports 18090 (simulator) and 13000 (server) must be free.
# Usage: docker build -t docbrain-sync . && scripts/image-smoke.sh [IMAGE]
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:-docbrain-sync:latest}"
secret="smoke-test-secret"
sample="$(pwd)/examples/sample-space"
sim_port=18090
port=13000

# The first of docker and podman that reaches its engine, else buildah (CONTAINER_TOOL overrides).
tool="${CONTAINER_TOOL:-}"
for t in docker podman; do
  if [ -z "$tool" ] && command -v "$t" >/dev/null 2>&1 && "$t" info >/dev/null 2>&1; then tool=$t; fi
done
if [ -z "$tool" ] && command -v buildah >/dev/null 2>&1; then tool=buildah; fi
[ -n "$tool" ] || { echo "image-smoke: needs a running docker or podman, or buildah" >&2; exit 1; }

pids=()
ctr=""
server=docbrain-image-smoke
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$ctr" ]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  if [ "$tool" != buildah ]; then "$tool" rm -f "$server" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if [ "$tool" = buildah ]; then ctr="$(buildah from --pull=never "$image")"; fi

# run_in_image [-e K=V]... -- CMD...: runs CMD in a fresh container of the image.
run_in_image() {
  local env=()
  while [ "$1" != "--" ]; do env+=("$1" "$2"); shift 2; done
  shift
  if [ "$tool" = buildah ]; then
    local benv=()
    for ((i = 1; i < ${#env[@]}; i += 2)); do benv+=(--env "${env[$i]}"); done
    buildah run --isolation chroot -v "$sample:/sample:ro" "${benv[@]}" "$ctr" -- "$@"
  else
    "$tool" run --rm --network host -v "$sample:/sample:ro" "${env[@]}" "$image" "$@"
  fi
}

fail() { echo "image-smoke: FAILED: $*" >&2; exit 1; }

echo "== $image with $tool: ingest the sample space"
out="$(run_in_image -e LOCAL_DOCS_PATH=/sample -- sh -c \
  'id -u && docbrain ingest 2>&1 | tail -n 2 && docbrain search "how do I roll back a bad deploy?" --top 1')"
echo "$out"
[ "$(echo "$out" | head -n 1)" != 0 ] || fail "the image runs as root"
echo "$out" | grep -q "Ingestion complete: 22 pages" || fail "ingest did not index the 20 sample pages and their PDF and DOCX"
echo "$out" | grep -q "Deploying and Rolling Back" || fail "search did not find the deploy page"

echo "== webhook server against the Confluence simulator"
cargo build --quiet -p docbrain-confluence --features simulator --example confluence-simulator
target/debug/examples/confluence-simulator --port "$sim_port" --from "$sample" 2>/dev/null &
pids+=($!)
settings=(CONFLUENCE_WEBHOOK_SECRET="$secret" CONFLUENCE_API_VERSION=v1
  CONFLUENCE_BASE_URL="http://127.0.0.1:$sim_port" CONFLUENCE_API_TOKEN=sim-personal-access-token
  SERVER_PORT="$port" SEARCH_API_KEYS=smoke-search-key-0123456789abcdef0123)
if [ "$tool" = buildah ]; then
  buildah run --isolation chroot "${settings[@]/#/--env=}" "$ctr" -- docbrain-server &
  pids+=($!)
else
  "$tool" run -d --name "$server" --network host "${settings[@]/#/--env=}" "$image" >/dev/null
fi
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.5; done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || fail "the server never became ready"

body='{"timestamp":1,"event":"page_created","userKey":"","page":{"id":100004}}'
sig="sha256=$(printf %s "$body" | openssl dgst -sha256 -hmac "$secret" | cut -d' ' -f2)"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "X-Hub-Signature: $sig" -d "$body" \
  "http://127.0.0.1:$port/confluence/events")"
[ "$code" = 200 ] || fail "a signed delivery got $code"
code="$(curl -s -o /dev/null -w '%{http_code}' -d "$body" "http://127.0.0.1:$port/confluence/events")"
[ "$code" = 401 ] || fail "an unsigned delivery got $code"
found=""
for _ in $(seq 1 60); do
  if curl -fs -H "Authorization: Bearer smoke-search-key-0123456789abcdef0123" "http://127.0.0.1:$port/search?q=redis+eviction&space=ENG&k=1" \
    | grep -q '"page_id":"100004"'; then
    found=1; break
  fi
  sleep 0.5
done
[ -n "$found" ] || fail "the page of the webhook never became searchable"
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/search?q=redis")"
[ "$code" = 401 ] || fail "a search without a key got $code"
run_in_image -e X=1 -- bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && grep -q ' 200 ' <&3" \
  || fail "the Compose healthcheck command failed"
echo "image-smoke: 7 passed, 0 failed"
