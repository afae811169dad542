#!/usr/bin/env bash
# The local model against the PyTorch reference, side by side in one run (machines differ;
# the ratio holds). Not for CI: the reference installs several GB on first use.
#
#   scripts/bench-embed.sh [ROUNDS]    (default 3; runs alternate: reference, ours, reference, …)
#
# 1. 256-token chunks: ../shared/bench/torch-reference.sh (override with TORCH_REFERENCE) and
#    `BENCH_PARTS=embed cargo bench -p docbrain-index --bench throughput`; prints each figure,
#    the medians and their ratio.
# 2. Many small pages: 192 one-chunk Markdown pages (150 words each, generated into a temporary
#    folder); `docbrain ingest` (release) embeds them, its rate being chunks embedded over the
#    sync's own elapsed time (fetch, convert, chunk, embed and write included; process start and
#    model load not), against sentence-transformers embedding the same texts (batch 16, 2 threads).
# BENCH_EMBED_PARTS=chunks or =pages runs one part.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PARTS=${BENCH_EMBED_PARTS:-chunks,pages}
REFERENCE=${TORCH_REFERENCE:-../shared/bench/torch-reference.sh}
VENV=${TORCH_REF_VENV:-$HOME/.cache/docbrain-bench/torch-venv}
[ -f "$REFERENCE" ] || { echo "no PyTorch reference at $REFERENCE (set TORCH_REFERENCE)" >&2; exit 2; }
export MODEL_DIR="${MODEL_DIR:-$(scripts/fetch-model.sh | tail -n 1)}"

cargo bench -p docbrain-index --bench throughput --no-run 2>/dev/null
cargo build --release --quiet -p docbrain-cli
bench=$(cargo bench -p docbrain-index --bench throughput --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="throughput" and m.get("executable"): print(m["executable"])' | tail -n 1)

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.1f}")' "$@"; }
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}")' "$1" "$2"; }

if [[ $PARTS == *chunks* ]]; then
echo "== 256-token chunks, batch 16, 2 threads ($ROUNDS rounds)"
refs=(); ours=()
for _ in $(seq "$ROUNDS"); do
  r=$(bash "$REFERENCE" "$MODEL_DIR" 2>/dev/null | tail -n 1 | sed -E 's/.*: ([0-9.]+) chunks.*/\1/')
  o=$(BENCH_PARTS=embed "$bench" | grep '^local embedding' | sed -E 's/.*: ([0-9.]+) chunks.*/\1/')
  echo "reference $r chunks/s, docbrain $o chunks/s"
  refs+=("$r"); ours+=("$o")
done
ref=$(median "${refs[@]}"); our=$(median "${ours[@]}")
echo "median: reference $ref, docbrain $our chunks/s: $(ratio "$our" "$ref")x"
fi

[[ $PARTS == *pages* ]] || exit 0
echo "== docbrain ingest of 192 small pages ($ROUNDS rounds)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/pages" <<'PY'
import os, random, sys
out = sys.argv[1]
os.makedirs(out)
words = ("the service deploy team page runbook restart check error alert owner build release "
         "database backup network cluster node queue worker cache index search user group space "
         "access review budget incident status update report metric latency traffic config").split()
rng = random.Random(7)
for i in range(192):
    body = " ".join(rng.choice(words) for _ in range(150)) + "."
    with open(os.path.join(out, f"page-{i:03}.md"), "w", encoding="utf-8") as f:
        f.write(f"# Page {i}\n\n{body}\n")
PY
refs=(); ours=()
for round in $(seq "$ROUNDS"); do
  r=$(OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 "$VENV/bin/python" - "$MODEL_DIR" "$work/pages" 2>/dev/null <<'PY'
import os, sys, time, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(2)
m = SentenceTransformer(sys.argv[1], device="cpu")
m.max_seq_length = 256
folder = sys.argv[2]
texts = [open(os.path.join(folder, f), encoding="utf-8").read() for f in sorted(os.listdir(folder))]
m.encode(texts[:16], batch_size=16)
t0 = time.perf_counter()
m.encode(texts, batch_size=16)
print(f"{len(texts) / (time.perf_counter() - t0):.1f}")
PY
)
  report=$(LOCAL_DOCS_PATH="$work/pages" DOCBRAIN_DATA_DIR="$work/data-$round" LOG_LEVEL=warn \
    target/release/docbrain ingest --json | tail -n 1)
  o=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%.1f" % (r["chunks_embedded"]/(r["elapsed_ms"]/1000)))' "$report")
  n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["chunks_embedded"])' "$report")
  echo "reference $r texts/s, docbrain ingest $o chunks/s ($n chunks)"
  [ "$n" = 192 ] || echo "warning: $n chunks for 192 pages: the two sides did not embed the same texts" >&2
  refs+=("$r"); ours+=("$o")
done
ref=$(median "${refs[@]}"); our=$(median "${ours[@]}")
echo "median: reference $ref, docbrain ingest $our chunks/s: $(ratio "$our" "$ref")x"
