// The relay without an Atlassian account: its function driven by the recorded events, with
// Node's own fetch standing in for Forge's, against a real docbrain-server and the Confluence
// simulator (both built from this repository; DOCBRAIN_BIN_DIR names target/debug, and
// scripts/forge-test.sh sets it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { delivery, relay, PAGE_EVENTS, PART_EVENTS } from '../src/relay.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const events = join(here, 'events');
const recorded = (name) => JSON.parse(readFileSync(join(events, name), 'utf8'));
const SECRET = 'relay-secret-0123456789abcdef0123456789';

/** A log that keeps its lines. */
function memoryLog() {
  const lines = [];
  return { lines, info: (l) => lines.push(`info ${l}`), error: (l) => lines.push(`error ${l}`) };
}

test('every recorded page event becomes a signed body the server can read', () => {
  const files = readdirSync(events).filter((f) => f.endsWith('-page.json'));
  assert.equal(files.length, PAGE_EVENTS.size);
  for (const file of files) {
    const event = recorded(file);
    const out = delivery(event, SECRET);
    assert.ok(out, file);
    const expected = 'sha256=' + createHmac('sha256', SECRET).update(out.body).digest('hex');
    assert.equal(out.signature, expected, file);
    const body = JSON.parse(out.body);
    assert.equal(body.eventType, event.eventType);
    assert.equal(body.content.id, event.content.id);
    assert.equal(body.content.spaceKey, 'ENG');
    assert.ok(!out.body.includes(event.atlassianId), 'no user id leaves the site');
  }
});

test('comment and attachment events carry the page they belong to', () => {
  for (const file of ['created-comment.json', 'created-attachment.json']) {
    const event = recorded(file);
    assert.ok(PART_EVENTS.has(event.eventType), file);
    const body = JSON.parse(delivery(event, SECRET).body);
    assert.equal(body.eventType, event.eventType);
    assert.equal(body.content.id, event.content.id);
    assert.deepEqual(body.content.container, { id: '100001', type: 'page' });
  }
});

test('blog posts and other content are not forwarded; a relay without settings sends nothing', async () => {
  let calls = 0;
  const fetch = async () => { calls += 1; return { status: 200 }; };
  const log = memoryLog();
  assert.equal(await relay(recorded('created-blogpost.json'), { fetch, url: 'http://x', secret: SECRET, log }), null);
  assert.equal(await relay(recorded('updated-page.json'), { fetch, url: undefined, secret: SECRET, log }), null);
  assert.equal(await relay(recorded('updated-page.json'), { fetch, url: 'http://x', secret: '', log }), null);
  assert.equal(calls, 0);
  assert.match(log.lines.join('\n'), /forge variables set/);
});

test('a delivery that fails is logged, not thrown', async () => {
  const log = memoryLog();
  const fetch = async () => { throw new Error('connection refused'); };
  assert.equal(await relay(recorded('updated-page.json'), { fetch, url: 'http://x', secret: SECRET, log }), null);
  assert.match(log.lines.join('\n'), /not delivered \(connection refused\).*scheduled crawl/);
});

// End to end, against the real server and simulator.
const bin = process.env.DOCBRAIN_BIN_DIR;
const e2e = { skip: bin ? false : 'set DOCBRAIN_BIN_DIR to target/debug (scripts/forge-test.sh does)' };
const children = [];
let sim;
let server;
let data;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Spawns `cmd` and resolves once `pattern` appears on the stream named. */
function start(cmd, args, env, stream, pattern) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${seen}`)), 120_000);
    child[stream].on('data', (chunk) => {
      seen += chunk;
      if (pattern.test(seen)) { clearTimeout(timer); resolve(child); }
    });
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}: ${seen}`)));
  });
}

/** Waits up to `ms` for `check` to hold; returns the time it took. */
async function within(ms, what, check) {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

before(async () => {
  if (!bin) return;
  const simPort = await freePort();
  const serverPort = await freePort();
  data = mkdtempSync(join(tmpdir(), 'docbrain-relay-'));
  await start(join(bin, 'examples', 'confluence-simulator'),
    ['--port', String(simPort), '--from', join(here, '..', '..', 'examples', 'sample-space')],
    {}, 'stderr', /ctrl-c stops it/);
  sim = `http://127.0.0.1:${simPort}`;
  await start(join(bin, 'docbrain-server'), [], {
    SERVER_BIND: '127.0.0.1', SERVER_PORT: String(serverPort), DOCBRAIN_DATA_DIR: data,
    CONFLUENCE_BASE_URL: `${sim}/wiki`, CONFLUENCE_USER_EMAIL: 'bot@example.com',
    CONFLUENCE_API_TOKEN: 'sim-api-token', CONFLUENCE_ANONYMOUS_ACCESS: 'true',
    CONFLUENCE_WEBHOOK_SECRET: SECRET, WEBHOOK_DEBOUNCE_MS: '20', LOG_LEVEL: 'warn',
  }, 'stdout', /listening on/);
  server = `http://127.0.0.1:${serverPort}`;
});

after(async () => {
  // Every process this file started is gone before it ends, passed or failed.
  await Promise.all(children.map((child) => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill();
  })));
  if (data) rmSync(data, { recursive: true, force: true });
});

const TITLE = 'Restarting the Payments Service';

async function hits(q) {
  const answer = await fetch(`${server}/search?q=${encodeURIComponent(q)}`);
  return (await answer.json()).hits ?? [];
}

async function send(name, id, secret = SECRET, log = memoryLog()) {
  const event = recorded(name);
  event.content.id = id;
  return relay(event, { fetch, url: `${server}/confluence/events`, secret, log });
}

let page;

test('an edit delivered through the relay is searchable', e2e, async () => {
  const edited = await fetch(`${sim}/_sim/pages?title=${encodeURIComponent(TITLE)}`, {
    method: 'POST', body: '<p>Page the zebra desk before restarting payments.</p>',
  });
  page = (await edited.json()).id;
  assert.ok(page);
  assert.equal(await send('updated-page.json', page), 200);
  await within(15_000, 'the edit is searchable', async () =>
    (await hits('zebra desk')).some((h) => h.page_id === page));
});

test('a permissions_updated event hides the page within 2 s', e2e, async () => {
  assert.ok(page, 'the edit test ran first');
  // A second, open page delivered the same way stays found while the first one hides.
  const other = 'Feature Flags';
  const edited = await fetch(`${sim}/_sim/pages?title=${encodeURIComponent(other)}`, {
    method: 'POST', body: '<p>Zebra desk flags ship dark.</p>',
  });
  const open = (await edited.json()).id;
  assert.equal(await send('updated-page.json', open), 200);
  await within(15_000, 'the open page is searchable', async () =>
    (await hits('zebra desk')).some((h) => h.page_id === open));
  const restricted = await fetch(`${sim}/_sim/restrictions?title=${encodeURIComponent(TITLE)}&group=hr`, { method: 'POST' });
  assert.equal(restricted.status, 200);
  assert.equal(await send('permissions_updated-page.json', page), 200);
  const took = await within(2_000, 'an anonymous search loses the page', async () => {
    const found = await hits('zebra desk');
    return !found.some((h) => h.page_id === page) && found.some((h) => h.page_id === open);
  });
  assert.ok(took <= 2_000);
});

test('a wrong secret is a 401, logged', e2e, async () => {
  const log = memoryLog();
  assert.equal(await send('updated-page.json', page ?? '100001', 'not-the-secret', log), 401);
  assert.match(log.lines.join('\n'), /HTTP 401.*differs from the server/);
});
