#!/usr/bin/env bash
# `docbrain ingest` against a large simulated site, as separate processes: the simulator (its
# generated site of SCALE_PAGES pages in SCALE_SPACES spaces, chains 30 deep, 5% restricted, and
# its stand-in embedder) and the release `docbrain` binary on the embedded store, permissions
# read. For each API version it prints the first crawl's pages/s, the unchanged re-crawl's time,
# the peak memory of each `docbrain ingest` (from /usr/bin/time) and the index's size on disk.
#
#   scripts/bench-scale.sh                      # SCALE_PAGES=100000 SCALE_SPACES=50
#   SCALE_PAGES=10000 scripts/bench-scale.sh    # the same at 10,000 pages
#
# The requests each crawl makes are counted by the in-process bench:
#   CRAWL_PART=scale cargo bench -p docbrain-confluence --features simulator --bench crawl
set -euo pipefail
cd "$(dirname "$0")/.."

pages=${SCALE_PAGES:-100000}
spaces=${SCALE_SPACES:-50}
cargo build --release --quiet -p docbrain-cli
cargo build --release --quiet -p docbrain-confluence --features simulator --example confluence-simulator

work=$(mktemp -d)
sim=""
cleanup() {
  if [ -n "$sim" ]; then kill "$sim" 2>/dev/null || true; wait "$sim" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

target/release/examples/confluence-simulator --port 0 --scale-pages "$pages" --scale-spaces "$spaces" \
  2>"$work/sim.log" &
sim=$!
deadline=$((SECONDS + 600))
until grep -q "ctrl-c stops it" "$work/sim.log"; do
  if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$sim" 2>/dev/null; then
    echo "bench-scale: the simulator did not start:" >&2
    cat "$work/sim.log" >&2
    exit 1
  fi
  sleep 0.5
done
addr=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/sim.log" | head -n 1)

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo no AVX-512))"
echo "scale: $pages generated pages in $spaces spaces (+1 in ENG), permissions read, embedded store,"
echo "       stand-in embedder (384 dimensions), CONFLUENCE_FETCH_CONCURRENCY=4 (the default); $cpu, $(nproc) cores"

export SOURCE_TYPE=confluence LOG_LEVEL=warn EMBED_PROVIDER=openai OPENAI_BASE_URL="$addr/v1" \
       OPENAI_API_KEY=stand-in-embedder-key EMBED_MODEL_ID=text-embedding-3-small EMBED_DIMENSIONS=384

# run NAME: one `docbrain ingest`; its wall time and peak RSS (from /usr/bin/time) into
# $work/NAME.time, and its peak heap (RssAnon, sampled every 0.1 s) into $work/NAME.anon. RSS also
# counts the index file pages SQLite maps (RssFile: page cache the kernel can take back).
run() {
  /usr/bin/time -f "%e %M" -o "$work/$1.time" target/release/docbrain ingest >"$work/$1.out" 2>"$work/$1.err" &
  local pid=$! anon=0 kb
  while kill -0 "$pid" 2>/dev/null; do
    kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$(pgrep -P "$pid" | head -n 1)/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$anon" ] && anon=$kb
    sleep 0.1
  done
  echo "$anon" >"$work/$1.anon"
  wait "$pid" || {
    echo "bench-scale: docbrain ingest failed ($1):" >&2
    tail -n 20 "$work/$1.err" "$work/$1.out" >&2
    exit 1
  }
}
seconds() { cut -d' ' -f1 "$work/$1.time"; }
peak_mb() { echo "$(( $(cut -d' ' -f2 "$work/$1.time") / 1024 )) MB (heap $(( $(cat "$work/$1.anon") / 1024 )) MB)"; }

for version in v2 v1; do
  export CONFLUENCE_API_VERSION=$version DOCBRAIN_DATA_DIR="$work/data-$version"
  if [ "$version" = v2 ]; then
    export CONFLUENCE_BASE_URL="$addr/wiki" CONFLUENCE_USER_EMAIL=bot@example.com CONFLUENCE_API_TOKEN=sim-api-token
  else
    unset CONFLUENCE_USER_EMAIL
    export CONFLUENCE_BASE_URL="$addr" CONFLUENCE_API_TOKEN=sim-personal-access-token
  fi
  run "first-$version"
  run "again-$version"
  indexed=$(grep -o 'Ingestion complete: [0-9]* pages' "$work/first-$version.out" | grep -o '[0-9]*' || echo "?")
  first_s=$(seconds "first-$version")
  echo "  $version: first crawl $indexed pages in ${first_s} s ($(python3 -c "print(round($pages / $first_s))") pages/s), peak RSS $(peak_mb "first-$version");" \
       "unchanged re-crawl $(seconds "again-$version") s, peak RSS $(peak_mb "again-$version");" \
       "index on disk $(du -sm "$DOCBRAIN_DATA_DIR" | cut -f1) MB"
done
