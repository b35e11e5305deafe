// Smoke test of the e2e harness: the packaged extension installs into a real VS Code, its command
// runs from the palette and its notification appears. Skipped without code-server, failed under CI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, e2eSkip, withVSCode } from './harness';

const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

test('Steelscope: Show Version runs from the command palette', { skip: e2eSkip(), timeout: 180_000 }, async () => {
  await withVSCode({ name: 'smoke' }, async (vs) => {
    await vs.openWorkbench();
    await vs.runCommand('Steelscope: Show Version');
    assert.equal(await vs.notificationText(/^Steelscope /), `Steelscope ${version}`);
    await vs.screenshot('show-version');
  });
});
