// The Forge function: every page event of the trigger in manifest.yml goes to relay().
import { fetch } from '@forge/api';
import { relay } from './relay.js';

export const handler = async (event) => {
  await relay(event, {
    fetch,
    url: process.env.DOCBRAIN_EVENTS_URL,
    secret: process.env.CONFLUENCE_WEBHOOK_SECRET,
    log: console,
  });
};
