#!/usr/bin/env bash
# Coverage-guided fuzzing of the storage-format converter, the webhook body reader and the
# attachment extractors with cargo-fuzz (libFuzzer), for a bounded time per target.
#
#   scripts/fuzz.sh [seconds per target, default 60]
#
# Needs the nightly toolchain (installed if missing) and cargo-fuzz (installed if missing).
# The corpus starts from the sample space's storage-format pages and attachments; crashes are
# saved under fuzz/artifacts/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-${FUZZ_SECONDS:-60}}"
CARGO_FUZZ_VERSION=0.13.2

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

mkdir -p fuzz/corpus/storage_format fuzz/corpus/webhook_payload fuzz/corpus/attachment
find examples/sample-space -name '*.xml' -exec cp {} fuzz/corpus/storage_format/ \;
printf '{"event":"page_updated","page":{"id":123}}' >fuzz/corpus/webhook_payload/dc
printf 'sha256=00\0{"page":{"id":"1","idAsString":"1","version":2}}' >fuzz/corpus/webhook_payload/cloud

# The attachment target's first byte picks the type (0 PDF, 1 DOCX).
{ printf '\0'; cat examples/sample-space/runbooks/disaster-recovery-drill.pdf; } >fuzz/corpus/attachment/pdf
{ printf '\1'; cat examples/sample-space/onboarding/on-call-handbook.docx; } >fuzz/corpus/attachment/docx

cargo +nightly fuzz build
for target in storage_format webhook_payload attachment; do
  echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
  log="fuzz/$target.log"
  if ! cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=20 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target failed; inputs in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || tail -n 3 "$log"
done
echo "fuzz: no crash"
