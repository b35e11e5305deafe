// Delete Run removes only what a run owns: a run folder the target created in its runs root
// (by real path). A folder observed from elsewhere, or reached through a symlink that leaves the
// runs root, is only forgotten; its files stay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, posix, win32 } from 'node:path';
import { deleteQuestion, planDelete } from '../../src/host/runs/deletePlan';
import { LocalTarget } from '../../src/host/runs/localTarget';
import { scratch } from '../helpers';

test('planDelete: a direct child of the runs root is deleted; anything else is only forgotten', () => {
  assert.deepEqual(planDelete('/home/u/runs/tiny-1', '/home/u/runs'), { action: 'delete', dir: '/home/u/runs/tiny-1' });
  assert.equal(planDelete('/home/u/runs/tiny-1/', '/home/u/runs/').action, 'delete');
  for (const dir of [
    '/home/u/runs',
    '/home/u',
    '/',
    '/home/u/runs/a/b',
    '/home/u/runs-other/x',
    '/home/u/runs/../x',
    '/data/exp1',
  ]) {
    const plan = planDelete(dir, '/home/u/runs');
    assert.equal(plan.action, 'forget', dir);
    assert.ok(plan.action === 'forget' && plan.why.includes('/home/u/runs'), 'the reason names the runs folder');
  }
  assert.equal(planDelete('C:\\runs\\a', 'C:\\runs', win32).action, 'delete');
  assert.equal(planDelete('D:\\runs\\a', 'C:\\runs', win32).action, 'forget');
  assert.equal(planDelete('/r/a', '/r', posix).action, 'delete');
});

test('deleteQuestion names the full path, and says nothing is deleted for a foreign folder', () => {
  const own = deleteQuestion(planDelete('/home/u/runs/tiny-1', '/home/u/runs'), 'tiny', 'This machine');
  assert.match(own, /\/home\/u\/runs\/tiny-1/);
  assert.match(own, /cannot be undone/);
  const foreign = deleteQuestion(planDelete('/data/exp1', '/home/u/runs'), 'exp1', 'This machine');
  assert.match(foreign, /\/data\/exp1/);
  assert.match(foreign, /nothing is deleted/);
});

function fakeRun(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.jsonl'), '{"step":1,"t":1,"loss":2}\n');
}

test('LocalTarget.delete refuses a folder outside its runs root and one reached through a symlink', async () => {
  const root = scratch('delete-plan');
  const runsRoot = join(root, 'runs');
  const target = new LocalTarget({ runsRoot, nodePath: 'node', cliPath: '/nonexistent/cli.js' });

  const opened = join(root, 'my-project');
  fakeRun(opened);
  writeFileSync(join(opened, 'thesis.tex'), 'not a run file');
  assert.equal((await target.planDelete(opened)).action, 'forget');
  await assert.rejects(target.delete(opened), /not a run folder in the runs folder/);
  assert.ok(existsSync(join(opened, 'thesis.tex')) && existsSync(join(opened, 'metrics.jsonl')), 'nothing was removed');

  // A link in the runs root that points outside it: its real path is outside.
  mkdirSync(runsRoot, { recursive: true });
  symlinkSync(opened, join(runsRoot, 'link'));
  assert.equal((await target.planDelete(join(runsRoot, 'link'))).action, 'forget');
  await assert.rejects(target.delete(join(runsRoot, 'link')));
  assert.ok(existsSync(join(opened, 'thesis.tex')));

  // The target's own run folder goes, also when the runs root itself is reached through a link.
  const own = join(runsRoot, 'tiny-1');
  fakeRun(own);
  const linkedRoot = join(root, 'runs-link');
  symlinkSync(runsRoot, linkedRoot);
  const viaLink = new LocalTarget({ runsRoot: linkedRoot, nodePath: 'node', cliPath: '/nonexistent/cli.js' });
  assert.equal((await viaLink.planDelete(join(linkedRoot, 'tiny-1'))).action, 'delete');
  await viaLink.delete(join(linkedRoot, 'tiny-1'));
  assert.ok(!existsSync(own), 'the run folder is gone');
});
