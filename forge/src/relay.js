// The relay itself, free of Forge imports so it runs under plain Node in the tests.
//
// A Confluence page event is forwarded to docbrain-server's POST /confluence/events as a small
// JSON body (the event name and the page's id, title and space; for a comment or attachment
// event, also the page it belongs to, its `container`), signed like Data Center's
// webhooks: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`, keyed with the shared
// secret. The server decides what the event means. Nothing is stored and nothing is retried: a
// failed delivery is logged, and the server's scheduled crawl is the safety net.
import { createHmac } from 'node:crypto';

/** The page events forwarded; anything else (blog posts, tasks, …) is dropped. */
export const PAGE_EVENTS = new Set([
  'avi:confluence:created:page',
  'avi:confluence:updated:page',
  'avi:confluence:trashed:page',
  'avi:confluence:restored:page',
  'avi:confluence:deleted:page',
  'avi:confluence:moved:page',
  'avi:confluence:archived:page',
  'avi:confluence:unarchived:page',
  'avi:confluence:permissions_updated:page',
]);

/** The comment and attachment events forwarded: the server re-reads the page they belong to. */
export const PART_EVENTS = new Set([
  'avi:confluence:created:comment',
  'avi:confluence:updated:comment',
  'avi:confluence:deleted:comment',
  'avi:confluence:created:attachment',
  'avi:confluence:updated:attachment',
  'avi:confluence:trashed:attachment',
  'avi:confluence:restored:attachment',
  'avi:confluence:deleted:attachment',
]);

/**
 * The body and signature to send for a Forge event, or null when it is not forwarded.
 * @param {object} event the Forge event payload
 * @param {string} secret CONFLUENCE_WEBHOOK_SECRET
 */
export function delivery(event, secret) {
  const id = event?.content?.id;
  const known = PAGE_EVENTS.has(event?.eventType) || PART_EVENTS.has(event?.eventType);
  if (!known || id === undefined || id === null || id === '') {
    return null;
  }
  const content = {
    id: String(id),
    type: event.content.type ?? 'page',
    title: event.content.title ?? null,
    spaceKey: event.content.space?.key ?? null,
  };
  const container = event.content.container;
  if (PART_EVENTS.has(event.eventType) && container?.id) {
    content.container = { id: String(container.id), type: container.type ?? 'page' };
  }
  const body = JSON.stringify({ eventType: event.eventType, content });
  const signature = 'sha256=' + createHmac('sha256', secret).update(body, 'utf8').digest('hex');
  return { body, signature };
}

/**
 * Forwards one event. Never throws: failures are logged (Forge keeps the function's log).
 * @param {object} event the Forge event payload
 * @param {{fetch: Function, url?: string, secret?: string, log: {info: Function, error: Function}}} env
 * @returns {Promise<number|null>} the server's status, or null when nothing was sent
 */
export async function relay(event, { fetch, url, secret, log }) {
  if (!url || !secret) {
    log.error('docbrain relay: set DOCBRAIN_EVENTS_URL and CONFLUENCE_WEBHOOK_SECRET with `forge variables set`; nothing was sent');
    return null;
  }
  const out = delivery(event, secret);
  if (!out) {
    log.info(`docbrain relay: ${event?.eventType ?? 'an event'} is not a page event DocBrain indexes; not forwarded`);
    return null;
  }
  try {
    const answer = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature': out.signature },
      body: out.body,
    });
    if (answer.status >= 200 && answer.status < 300) {
      log.info(`docbrain relay: ${event.eventType} for page ${event.content.id} delivered (${answer.status})`);
    } else {
      const hint = answer.status === 401
        ? ': CONFLUENCE_WEBHOOK_SECRET differs from the server\'s'
        : '';
      log.error(`docbrain relay: ${event.eventType} for page ${event.content.id} refused with HTTP ${answer.status}${hint}; the next scheduled crawl catches up`);
    }
    return answer.status;
  } catch (e) {
    log.error(`docbrain relay: ${event.eventType} for page ${event.content.id} not delivered (${e?.message ?? e}); the next scheduled crawl catches up`);
    return null;
  }
}
