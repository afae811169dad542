#!/usr/bin/env bash
# A single-node OpenSearch 2.19.1 with the k-NN plugin, assembled from Maven Central artifacts.
#
#   scripts/opensearch.sh start    download (cached), assemble, start, wait until healthy
#   scripts/opensearch.sh stop     stop the node
#   scripts/opensearch.sh status   print the cluster health
#
# Settings: OPENSEARCH_HOME_DIR (default .cache/opensearch in the checkout), OPENSEARCH_PORT (9200),
# JAVA17_HOME (default /usr/lib/jvm/java-17-openjdk-amd64). OpenSearch refuses to run as root,
# so when run as root the node runs as the system user `opensearch` (created if missing).
set -euo pipefail

VERSION=2.19.1
KNN_VERSION=2.19.1.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${OPENSEARCH_HOME_DIR:-$ROOT/.cache/opensearch}"
PORT="${OPENSEARCH_PORT:-9200}"
JDK="${JAVA17_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
H="$W/opensearch-$VERSION"
URL="http://127.0.0.1:$PORT"
RUN_USER=opensearch

log() { echo "opensearch.sh: $*" >&2; }

mvn_copy() { # artifact outdir
  mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$1" -DoutputDirectory="$2"
}

download() {
  mkdir -p "$W/dl"
  [ -f "$W/dl/opensearch-$VERSION.zip" ] ||
    mvn_copy "org.opensearch.distribution.integ-test-zip:opensearch:$VERSION:zip" "$W/dl"
  [ -f "$W/dl/opensearch-knn-$KNN_VERSION.zip" ] ||
    mvn_copy "org.opensearch.plugin:opensearch-knn:$KNN_VERSION:zip" "$W/dl"
  fetch_module lang-painless
  fetch_module analysis-common
}

# fetch_module NAME: the module's jar and its runtime dependencies, into $W/dl/NAME
fetch_module() {
  local name="$1" pom="$W/dl/$1-pom"
  [ -d "$W/dl/$name" ] && return 0
  mkdir -p "$pom"
  cat >"$pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>docbrain</groupId><artifactId>$name-module</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.opensearch.plugin</groupId><artifactId>$name</artifactId><version>$VERSION</version></dependency>
  </dependencies>
</project>
POM
  mvn -B -q -f "$pom/pom.xml" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$W/dl/$name.tmp"
  mv "$W/dl/$name.tmp" "$W/dl/$name"
}

# install_module NAME CLASS_PATTERN EXTENDED DESCRIPTION: a module from its jars, leaving out
# what the server or the extended module already ships (two copies of a class is jar hell).
install_module() {
  local name="$1" pattern="$2" extended="$3" description="$4" m="$H/modules/$1" jar base cls
  mkdir -p "$m"
  for jar in "$W/dl/$name"/*.jar; do
    base="$(basename "$jar")"
    ls "$H/lib/${base%-*}"-*.jar >/dev/null 2>&1 && continue
    [ -n "$extended" ] && ls "$H/modules/$extended/${base%-*}"-*.jar >/dev/null 2>&1 && continue
    cp "$jar" "$m/"
  done
  cls="$(unzip -l "$m/$name-$VERSION.jar" | awk '{print $4}' | grep -E "$pattern" | head -1)" ||
    { log "no class matching $pattern in $name-$VERSION.jar"; exit 1; }
  cls="${cls%.class}"
  cat >"$m/plugin-descriptor.properties" <<PROPS
description=$description
version=$VERSION
name=$name
classname=${cls//\//.}
java.version=11
opensearch.version=$VERSION
extended.plugins=$extended
has.native.controller=false
PROPS
  cat >"$m/plugin-security.policy" <<'POLICY'
grant {
  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";
};
POLICY
}

assemble() {
  [ -f "$H/.assembled" ] && return 0
  rm -rf "$H" "$W/unpack"
  mkdir -p "$W/unpack"
  unzip -q "$W/dl/opensearch-$VERSION.zip" -d "$W/unpack"
  mv "$W/unpack/opensearch-$VERSION" "$H"
  rmdir "$W/unpack"
  # lang-painless (k-NN refuses to install without it) and analysis-common (the `english`
  # analyzer; every managed cluster has it) as modules, as a full distribution ships them.
  install_module lang-painless 'PainlessPlugin\.class$' "" "Painless scripting"
  install_module analysis-common 'CommonAnalysisPlugin\.class$' lang-painless "Common analysis"
  JAVA_HOME="$JDK" "$H/bin/opensearch-plugin" install --batch "file://$W/dl/opensearch-knn-$KNN_VERSION.zip" >&2
  touch "$H/.assembled"
}

as_node_user() {
  if [ "$(id -u)" = 0 ]; then
    id -u "$RUN_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER"
    chown -R "$RUN_USER" "$W"
    # the user needs to traverse every directory above the node's folder
    local d="$W"
    while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done
    runuser -u "$RUN_USER" -- "$@"
  else
    "$@"
  fi
}

healthy() { curl -fsS "$URL/_cluster/health?wait_for_status=yellow&timeout=${1:-1}s" >/dev/null 2>&1; }

start() {
  if healthy; then log "already running at $URL"; return 0; fi
  download
  assemble
  mkdir -p "$W/data" "$W/logs"
  log "starting OpenSearch $VERSION (k-NN $KNN_VERSION) at $URL"
  # A test node on a build machine: a disk filled by build output must not block its indices
  # (past the watermarks OpenSearch refuses to create an index, and the tests fail for it).
  as_node_user env JAVA_HOME="$JDK" OPENSEARCH_JAVA_OPTS="${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx1g}" \
    "$H/bin/opensearch" -d -p "$W/os.pid" -Ediscovery.type=single-node -Enetwork.host=127.0.0.1 \
    -Ehttp.port="$PORT" -Epath.data="$W/data" -Epath.logs="$W/logs" -Ecluster.name=docbrain-test \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    </dev/null >"$W/logs/console.log" 2>&1 # the daemon must not hold the caller's pipes open
  local i
  for i in $(seq 1 60); do
    if healthy 2; then log "healthy after ~$((i * 2)) s"; return 0; fi
    sleep 1
  done
  log "the node did not become healthy in 180 s; last log lines:"
  tail -n 40 "$W/logs/docbrain-test.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$W/os.pid" ]; then
    local pid
    pid="$(cat "$W/os.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    rm -f "$W/os.pid"
    log "stopped"
  else
    log "not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) curl -fsS "$URL/_cluster/health?pretty" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
