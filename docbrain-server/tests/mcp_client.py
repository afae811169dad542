"""Drives DocBrain's MCP front door with the official Python SDK (PyPI `mcp`).

Run by docbrain-server/tests/mcp.rs, which builds the indexes, starts the servers and passes
what to connect to as a JSON file (argv[1]). Checks, over stdio (`docbrain mcp`) and Streamable
HTTP (`/mcp`): the handshake, the tool list and schemas, every tool's answer against the sample
space's index, tool errors for bad input, the key, the permission filter, and 20 concurrent
sessions searching while pages change. Prints one line per check; exits non-zero on the first
failure.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

HIT_FIELDS = {"page_id", "title", "space", "breadcrumb", "url", "score", "text", "truncated"}
checks = 0


def check(cond, what, detail=""):
    global checks
    if not cond:
        raise AssertionError(f"{what}: {detail}")
    checks += 1


def http_server(url, key, as_user=None):
    if as_user:
        url = f"{url}?as={as_user}"
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    return streamable_http_client(url, http_client=client)


async def call(client, tool, args):
    result = await client.call_tool(tool, args)
    text = "".join(c.text for c in result.content if getattr(c, "text", None))
    return result, text


async def tools_answer_from_the_sample_space(server, name):
    async with Client(server, cache=None) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        check(set(tools) == {"search_docs", "get_page", "list_spaces"}, f"{name}: tool list", tools.keys())
        for t in tools.values():
            check(t.description and len(t.description) > 40, f"{name}: {t.name} has a description")
            check(t.output_schema and t.output_schema.get("type") == "object", f"{name}: {t.name} has an output schema")
        props = tools["search_docs"].input_schema["properties"]
        check({"query", "k", "space"} <= set(props), f"{name}: search_docs arguments", props.keys())
        check(tools["search_docs"].input_schema.get("required") == ["query"], f"{name}: query is required")

        result, text = await call(c, "search_docs", {"query": "how do I roll back a bad deploy?", "k": 3})
        check(not result.is_error, f"{name}: search_docs answers", text)
        hits = result.structured_content["hits"]
        check(len(hits) == 3, f"{name}: k hits", len(hits))
        for h in hits:
            check(set(h) == HIT_FIELDS, f"{name}: hit fields", h.keys())
            check(h["text"] and h["url"] and h["breadcrumb"].startswith(h["title"]), f"{name}: hit content", h)
        top = hits[0]
        check(top["title"] == "Deploying and Rolling Back", f"{name}: the right page first", top["title"])
        check("Deploying and Rolling Back" in text and top["url"] in text, f"{name}: readable text names the hit", text[:200])

        result, text = await call(c, "get_page", {"page_id": top["page_id"]})
        check(not result.is_error, f"{name}: get_page answers", text)
        page = result.structured_content
        check(page["title"] == top["title"] and page["page_id"] == top["page_id"], f"{name}: the page asked for", page["title"])
        check("kubectl argo rollouts undo" in page["markdown"], f"{name}: the page's text", page["markdown"][:200])
        check("## Rolling back a bad deploy" in page["markdown"], f"{name}: the page's headings", page["markdown"][:300])
        check(isinstance(page["version"], int) and not page["truncated"], f"{name}: version, whole")

        result, text = await call(c, "list_spaces", {})
        spaces = result.structured_content["spaces"]
        check(len(spaces) == 1 and spaces[0]["key"] == "LOCAL" and spaces[0]["pages"] == 20, f"{name}: list_spaces", spaces)
        check(spaces[0]["chunks"] > 20 and spaces[0]["last_sync_ms"], f"{name}: chunk count and sync time", spaces)

        bad = [
            ("search_docs", {"query": "   "}, "the query is empty"),
            ("search_docs", {"query": "deploy", "k": 0}, "k must be from 1 to 50"),
            ("search_docs", {"query": "deploy", "k": 51}, "k must be from 1 to 50"),
            ("search_docs", {"query": "deploy", "k": "five"}, "invalid type"),
            ("search_docs", {"query": "deploy", "space": "NOPE"}, "no space NOPE"),
            ("search_docs", {}, "query"),
            ("get_page", {"page_id": "no/such/page.md"}, "no page no/such/page.md"),
        ]
        for tool, args, reason in bad:
            result, text = await call(c, tool, args)
            check(result.is_error and reason in text, f"{name}: {tool}({args}) is a tool error saying {reason!r}", text)
        # The session still works after the errors.
        result, _ = await call(c, "search_docs", {"query": "what is a SEV1?", "k": 1})
        check(not result.is_error and result.structured_content["hits"], f"{name}: still answering")
    print(f"ok: {name}: tools, answers and errors")


async def the_key_is_required(url):
    async with httpx2.AsyncClient() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        for headers in ({}, {"Authorization": "Bearer wrong-key"}):
            r = await http.post(url, json=body, headers={"Accept": "application/json, text/event-stream", **headers})
            check(r.status_code == 401, "/mcp without a valid key is 401", r.status_code)
            check("wrong-key" not in r.text, "the key given is not echoed")
    print("ok: http: the key is required")


async def permissions_hold(cfg):
    outsider = http_server(cfg["url"], cfg["key"], cfg["outsider"])
    member = http_server(cfg["url"], cfg["key"], cfg["member"])
    restricted = cfg["restricted_title"]
    async with Client(outsider, cache=None) as c:
        result, text = await call(c, "search_docs", {"query": cfg["query"], "k": 50})
        titles = [h["title"] for h in result.structured_content["hits"]]
        check(titles and restricted not in titles, "an outsider never sees the restricted page", titles)
        check(restricted not in text, "nor in the readable text")
        ids = [h["page_id"] for h in result.structured_content["hits"]]
        check(cfg["restricted_comment_id"] not in ids, "nor its comment", ids)
        check(cfg["restricted_comment"] not in text, "nor the comment's text")
        for page in (cfg["restricted_id"], cfg["restricted_comment_id"]):
            result, text = await call(c, "get_page", {"page_id": page, "include_comments": True})
            check(result.is_error and "no page" in text, "get_page of an unreadable page or comment is as unknown", text)
        result, _ = await call(c, "list_spaces", {})
        pages = {s["key"]: s["pages"] for s in result.structured_content["spaces"]}
        check(pages.get("ENG") == cfg["outsider_pages"], "list_spaces counts readable pages only", pages)
    async with Client(member, cache=None) as c:
        result, _ = await call(c, "search_docs", {"query": cfg["query"], "k": 50})
        titles = [h["title"] for h in result.structured_content["hits"]]
        check(restricted in titles, "a member sees it", titles)
        result, text = await call(c, "get_page", {"page_id": cfg["restricted_id"]})
        check(not result.is_error and result.structured_content["title"] == restricted, "and reads it", text[:200])
        check("comments" not in result.structured_content, "comments only on request", result.structured_content)
        result, text = await call(c, "get_page", {"page_id": cfg["restricted_id"], "include_comments": True})
        comments = result.structured_content.get("comments", [])
        check(
            [c["id"] for c in comments] == [cfg["restricted_comment_id"]]
            and cfg["restricted_comment"] in comments[0]["markdown"]
            and cfg["restricted_comment"] in text,
            "with its comments on request",
            comments,
        )
    print("ok: http: permissions hold through MCP")


async def concurrent_sessions(cfg):
    load = cfg["load"]
    server_url, key, member = cfg["url"], cfg["key"], cfg["member"]
    answers = 0

    async def session(n):
        nonlocal answers
        async with Client(http_server(server_url, key, member), cache=None) as c:
            for i in range(load["calls"]):
                result, text = await call(c, "search_docs", {"query": load["query"], "k": 5})
                check(not result.is_error, f"session {n} call {i} answers", text)
                hits = result.structured_content["hits"]
                check(len(hits) == 5, f"session {n} call {i}: every answer complete", hits)
                for h in hits:
                    check(set(h) == HIT_FIELDS and h["text"], f"session {n}: a whole hit", h)
                answers += 1

    await asyncio.gather(*(session(n) for n in range(load["sessions"])))
    check(answers == load["sessions"] * load["calls"], "every call answered", answers)
    print(f"ok: http: {load['sessions']} concurrent sessions, {answers} answers")


async def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    stdio = cfg["stdio"]
    await tools_answer_from_the_sample_space(
        StdioServerParameters(command=stdio["command"], args=stdio["args"], env=stdio["env"]), "stdio"
    )
    await tools_answer_from_the_sample_space(http_server(cfg["open"]["url"], cfg["open"]["key"]), "http")
    await the_key_is_required(cfg["open"]["url"])
    await permissions_hold(cfg["perm"])
    print("LOAD", flush=True)
    await concurrent_sessions(cfg["perm"])
    print(f"mcp_client: {checks} checks passed")


asyncio.run(main())
