#!/usr/bin/env bash
# Validates the Helm chart and the Compose file:
#   helm lint; helm template with the documentation's values snippet, with the webhook
#   disabled, and with ingest settings only; checks of what those render
#   (scripts/chart_checks.py); kubeconform against the Kubernetes schemas; a missing-secret
#   render that must fail; `docker compose config` (Debian's docker-compose is installed when
#   no compose client is present and the script runs as root).
#
# helm and kubeconform are built from the Go module proxy (pinned); the Kubernetes JSON schemas
# are generated from the swagger.json of the pinned k8s.io/kubernetes module. All of it is
# cached under .cache/chart-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.19.0
KUBECONFORM_VERSION=v0.7.0
K8S_VERSION=v1.34.2
TOOLS="$PWD/.cache/chart-tools"
export GOPATH="$TOOLS/go" GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod
mkdir -p "$GOBIN"

# build_tool NAME MODULE@VERSION: go install once per pinned version (a marker records it).
build_tool() {
  if [ ! -x "$GOBIN/$1" ] || [ "$(cat "$GOBIN/$1.version" 2>/dev/null)" != "$2" ]; then
    echo "== building $2"
    go install "$2"
    echo "$2" >"$GOBIN/$1.version"
  fi
}
build_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
build_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
SCHEMAS="$TOOLS/schemas/$K8S_VERSION"
if [ ! -f "$SCHEMAS/.done" ]; then
  echo "== generating Kubernetes $K8S_VERSION schemas"
  dir="$(cd "$TOOLS" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  python3 scripts/k8s_schemas.py "$dir/api/openapi-spec/swagger.json" "$SCHEMAS"
  touch "$SCHEMAS/.done"
fi
python3 -c 'import yaml' 2>/dev/null || pip install --quiet pyyaml

HELM="$GOBIN/helm"
CHART=helm/docbrain
OUT="$TOOLS/rendered"
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== helm lint"
"$HELM" lint "$CHART" --strict --kube-version "${K8S_VERSION#v}" -f "$CHART/ci/docs-snippet-values.yaml"
"$HELM" lint "$CHART" --strict --kube-version "${K8S_VERSION#v}" -f "$CHART/ci/webhook-disabled-values.yaml"

# docs-snippet is the README's webhook block alone: no search keys given (the chart makes one;
# search is never open).
for case in docs-snippet webhook-disabled ingest-only; do
  echo "== helm template ($case)"
  "$HELM" template docbrain "$CHART" --kube-version "${K8S_VERSION#v}" -f "$CHART/ci/$case-values.yaml" >"$OUT/$case.yaml"
  "$GOBIN/kubeconform" -strict -summary -kubernetes-version "${K8S_VERSION#v}" \
    -schema-location "$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json" "$OUT/$case.yaml"
done
python3 scripts/chart_checks.py "$OUT"

echo "== a webhook without its secret must not render"
if "$HELM" template docbrain "$CHART" --kube-version "${K8S_VERSION#v}" --set confluenceWebhook.enabled=true \
  --set confluenceWebhook.baseUrl=https://x.atlassian.net/wiki >/dev/null 2>"$OUT/fail.txt"; then
  echo "chart-check: rendering without a webhook secret succeeded" >&2
  exit 1
fi
grep -q "confluenceWebhook.enabled needs confluenceWebhook.webhookSecret" "$OUT/fail.txt"


echo "== docker compose config"
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1 \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # No compose client: Debian's docker-compose validates the same file format.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null; } \
    || echo "could not install docker-compose from Debian"
fi
if docker compose version >/dev/null 2>&1; then
  docker compose --env-file .env.example config --quiet
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose --env-file .env.example config --quiet
else
  echo "skipped: no docker compose client on this machine (the file is checked by scripts/chart_checks.py)"
fi
echo "compose file: valid"
python3 scripts/chart_checks.py --compose docker-compose.yml .env.example
echo "chart-check: ok"
