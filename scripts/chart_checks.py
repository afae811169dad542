#!/usr/bin/env python3
"""Checks what the Helm chart renders for the values in helm/docbrain/ci, and the Compose file.

Usage: chart_checks.py RENDERED_DIR
       chart_checks.py --compose docker-compose.yml .env.example
"""
import base64
import sys

import yaml

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs, kind, suffix=""):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    check(len(found) == 1, f"exactly one {kind} *{suffix} (found {len(found)})")
    return found[0] if found else {}


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def secret_value(docs, env, name):
    """The value an env var gets from a chart-rendered Secret."""
    ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
    if not ref:
        return None
    for d in docs:
        if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]:
            raw = d.get("data", {}).get(ref["key"])
            return base64.b64decode(raw).decode() if raw else None
    return None


def no_secret_in_configmaps(docs, secrets, case):
    for d in docs:
        if d["kind"] == "ConfigMap":
            text = yaml.safe_dump(d)
            for s in secrets:
                check(s not in text, f"{case}: secret value in ConfigMap {d['metadata']['name']}")
    for d in docs:
        if d["kind"] in ("Deployment", "CronJob"):
            text = yaml.safe_dump(d)
            for s in secrets:
                check(s not in text, f"{case}: secret value in plain text in {d['kind']}")


def server(docs):
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    return dep, pod, pod["containers"][0]


def ingest_job(docs):
    cron = one(docs, "CronJob", "-ingest")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return cron, pod, pod["containers"][0]


def check_rendered(out):
    # The documentation's snippet.
    docs = load(f"{out}/docs-snippet.yaml")
    dep, pod, c = server(docs)
    env = env_of(c)
    check(secret_value(docs, env, "CONFLUENCE_WEBHOOK_SECRET") == "your-shared-secret",
          "docs: CONFLUENCE_WEBHOOK_SECRET wired from the Secret into the server")
    check(secret_value(docs, env, "CONFLUENCE_API_TOKEN") == "your-api-token", "docs: API token from the Secret")
    check(env.get("CONFLUENCE_BASE_URL", {}).get("value") == "https://your-org.atlassian.net/wiki", "docs: base URL")
    check(env.get("CONFLUENCE_USER_EMAIL", {}).get("value") == "bot@your-org.com", "docs: email")
    check(env.get("CONFLUENCE_API_VERSION", {}).get("value") == "v2", "docs: api version")
    check(c["command"] == ["docbrain-server"], "docs: the server runs docbrain-server")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "docs: liveness on /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "docs: readiness on /readyz")
    check(pod["securityContext"].get("runAsNonRoot") is True, "docs: non-root pod")
    check(c["securityContext"].get("allowPrivilegeEscalation") is False, "docs: no privilege escalation")
    check("limits" in c.get("resources", {}), "docs: server resources")
    check(any(v.get("persistentVolumeClaim") for v in pod["volumes"]), "docs: a volume for journal and index")
    check(env.get("WEBHOOK_JOURNAL_DIR", {}).get("value", "").startswith("/data"), "docs: journal on the volume")
    cron, jpod, j = ingest_job(docs)
    check(cron["spec"]["schedule"] == "0 */6 * * *", "docs: ingest every 6 hours")
    check(cron["spec"]["concurrencyPolicy"] == "Forbid", "docs: concurrencyPolicy Forbid")
    check(j["command"] == ["docbrain", "ingest"], "docs: the CronJob runs docbrain ingest")
    jenv = env_of(j)
    check(jenv.get("SOURCE_TYPE", {}).get("value") == "confluence", "docs: ingest crawls Confluence")
    check(secret_value(docs, jenv, "CONFLUENCE_API_TOKEN") == "your-api-token", "docs: ingest gets the token")
    check("CONFLUENCE_WEBHOOK_SECRET" not in jenv, "docs: the ingest job does not get the webhook secret")
    svc = one(docs, "Service")
    check(svc["spec"]["ports"][0]["targetPort"] == "http", "docs: service targets the http port")
    check(len(secret_value(docs, env, "SEARCH_API_KEYS") or "") >= 32, "docs: a generated search key from the Secret")
    check(env.get("SEARCH_ALLOW_ANONYMOUS", {}).get("value") == "false", "docs: search is not open")
    check(env.get("SEARCH_PERMISSIONS", {}).get("value") == "true", "docs: results obey permissions")
    check(jenv.get("SEARCH_PERMISSIONS", {}).get("value") == "true", "docs: the crawl reads permissions")
    check(env.get("PERMISSION_CACHE_TTL", {}).get("value") == "5m", "docs: membership cache TTL")
    check("SEARCH_API_KEYS" not in jenv, "docs: the ingest job does not get the search keys")
    no_secret_in_configmaps(docs, ["your-shared-secret", "your-api-token"], "docs")

    # The webhook disabled; Data Center ingest.
    docs = load(f"{out}/webhook-disabled.yaml")
    _, _, c = server(docs)
    env = env_of(c)
    check("CONFLUENCE_WEBHOOK_SECRET" not in env, "disabled: no webhook secret in the server")
    check("SEARCH_API_KEYS" not in env, "disabled: an open index has no keys")
    check(env.get("SEARCH_ALLOW_ANONYMOUS", {}).get("value") == "true", "disabled: an open index says so")
    check(env.get("SEARCH_PERMISSIONS", {}).get("value") == "false", "disabled: permissions off")
    _, _, j = ingest_job(docs)
    jenv = env_of(j)
    check(jenv.get("CONFLUENCE_API_VERSION", {}).get("value") == "v1", "disabled: ingest uses v1")
    check(jenv.get("CONFLUENCE_SPACE_KEYS", {}).get("value") == "ENG,OPS", "disabled: space keys")
    check(secret_value(docs, jenv, "CONFLUENCE_API_TOKEN") == "data-center-pat", "disabled: PAT from the Secret")
    no_secret_in_configmaps(docs, ["data-center-pat"], "disabled")

    # Webhook settings falling back to the ingest block; OpenSearch; an Ingress.
    docs = load(f"{out}/ingest-only.yaml")
    _, _, c = server(docs)
    env = env_of(c)
    check(secret_value(docs, env, "CONFLUENCE_WEBHOOK_SECRET") == "shared-secret", "fallback: webhook secret")
    check(env.get("CONFLUENCE_BASE_URL", {}).get("value") == "https://your-org.atlassian.net/wiki",
          "fallback: base URL from ingest.confluence")
    check(env.get("CONFLUENCE_USER_EMAIL", {}).get("value") == "bot@your-org.com", "fallback: email")
    check(secret_value(docs, env, "CONFLUENCE_API_TOKEN") == "your-api-token", "fallback: token")
    check(env.get("INDEX_STORE", {}).get("value") == "opensearch", "fallback: OpenSearch store")
    keys = env.get("SEARCH_API_KEYS", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(keys.get("name") == "docbrain-search-keys", "fallback: search keys from an existing Secret")
    check(secret_value(docs, env, "OPENSEARCH_PASSWORD") == "os-password", "fallback: OpenSearch password")
    cron, jpod, _ = ingest_job(docs)
    check(cron["spec"]["schedule"] == "30 2 * * *", "fallback: custom schedule")
    check("affinity" not in jpod, "fallback: no node pinning with OpenSearch")
    ing = one(docs, "Ingress")
    paths = [p["path"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    check(paths == ["/confluence/events", "/search", "/mcp"],
          f"fallback: ingress routes the webhook, search and MCP ({paths})")
    no_secret_in_configmaps(docs, ["shared-secret", "your-api-token", "os-password"], "fallback")


def check_compose(compose_path, env_path):
    with open(compose_path, encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    env = {}
    with open(env_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    for name in ["CONFLUENCE_WEBHOOK_SECRET", "CONFLUENCE_BASE_URL", "CONFLUENCE_USER_EMAIL",
                 "CONFLUENCE_API_TOKEN", "CONFLUENCE_API_VERSION", "CONFLUENCE_SPACE_KEYS",
                 "SEARCH_USER_KEYS", "SEARCH_API_KEYS"]:
        check(name in env, f"compose: .env.example sets {name}")
    server = compose["services"].get("docbrain-server", {})
    senv = server.get("environment", {})
    for name in ["CONFLUENCE_WEBHOOK_SECRET", "CONFLUENCE_BASE_URL", "CONFLUENCE_USER_EMAIL",
                 "CONFLUENCE_API_TOKEN", "CONFLUENCE_API_VERSION", "SEARCH_USER_KEYS", "SEARCH_API_KEYS",
                 "CONFLUENCE_WEBHOOK_ALLOW_URL_TOKEN", "CONFLUENCE_ANONYMOUS_ACCESS"]:
        check(name in senv, f"compose: the server gets {name}")
    check(any("3000" in str(p) for p in server.get("ports", [])), "compose: port 3000 published")
    ingest = compose["services"].get("docbrain-ingest", {})
    check(ingest.get("command", [None])[:2] == ["docbrain", "ingest"], "compose: an ingest service")


if __name__ == "__main__":
    if sys.argv[1] == "--compose":
        check_compose(sys.argv[2], sys.argv[3])
    else:
        check_rendered(sys.argv[1])
    if FAILURES:
        print("chart_checks: FAILED\n  " + "\n  ".join(FAILURES), file=sys.stderr)
        sys.exit(1)
    print("chart_checks: ok")
