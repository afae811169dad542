// Validates manifest.yml with Atlassian's @forge/manifest, offline. Exits 1 on any error.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { validate } = require('@forge/manifest');
const manifest = fileURLToPath(new URL('../manifest.yml', import.meta.url));
const result = await validate(false, manifest);
for (const e of result.errors ?? []) {
  console.error(`manifest.yml:${e.line ?? '?'}:${e.column ?? '?'}: ${e.level}: ${e.message}`);
}
if (!result.success) {
  process.exit(1);
}
console.log('manifest.yml: valid');
