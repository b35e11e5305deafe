// Settings that name programs to run or where runs are written are this machine's business: a
// workspace (a cloned repository's .vscode/settings.json) must not set them, so they have
// "scope": "machine" (VS Code then reads them from user settings only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers';

test('nodePath, pythonPath and runsRoot can only be set per machine', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { scope?: string; default?: unknown }> } };
  };
  const properties = manifest.contributes.configuration.properties;
  for (const key of ['steelscope.nodePath', 'steelscope.pythonPath', 'steelscope.runsRoot']) {
    assert.equal(properties[key]?.scope, 'machine', key);
    assert.equal(properties[key]?.default, '', `${key}: empty means the default`);
  }
});
