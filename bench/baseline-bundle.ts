// The dashboard bundle as it was before the UI toolkit, for bench:dashboard's A/B against today's.
// Its sources are taken from git (webview/, src/ and the webview stylesheet at the commit before
// webview/common/ui.ts was added, or at BENCH_BASELINE=<rev>) and built into a temp folder with
// the webview build settings of that time (scripts/build.mjs: browser iife, chrome114, minified),
// against today's node_modules (chart.js is the same version). Nothing in the worktree changes.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';

const ROOT = resolve(__dirname, '..');

const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();

/** The revision the baseline is built from: BENCH_BASELINE, else the parent of the toolkit's first commit. */
export function baselineRevision(): { rev: string; what: string } {
  const asked = process.env.BENCH_BASELINE;
  if (asked) return { rev: git('rev-parse', '--short', asked), what: `BENCH_BASELINE=${asked}` };
  const added = git('log', '--diff-filter=A', '--format=%h', '--', 'webview/common/ui.ts').split('\n').at(-1);
  if (!added) throw new Error('no commit adds webview/common/ui.ts: set BENCH_BASELINE=<rev> to name the baseline');
  return { rev: git('rev-parse', '--short', `${added}^`), what: `the parent of ${added}, which added the UI toolkit` };
}

/**
 * Builds the baseline's dashboard.js and dashboard.css into `dir`, a new temp folder beside its
 * sources (`srcDir`: the bench reads the baseline's protocol from there); `remove` deletes both.
 */
export async function buildBaselineBundle(rev: string): Promise<{ dir: string; srcDir: string; remove: () => void }> {
  const src = mkdtempSync(join(tmpdir(), 'steelscope-baseline-'));
  const tsconfigs = git('ls-tree', '--name-only', rev)
    .split('\n')
    .filter((f) => /^tsconfig.*\.json$/.test(f));
  const archive = execFileSync('git', ['archive', rev, 'webview', 'src', 'media/dashboard.css', ...tsconfigs], {
    cwd: ROOT,
    maxBuffer: 1 << 28,
  });
  execFileSync('tar', ['-x', '-C', src], { input: archive });
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));
  const out = join(src, 'bundle');
  mkdirSync(out);
  await esbuild.build({
    entryPoints: [join(src, 'webview/dashboard/main.ts')],
    outfile: join(out, 'dashboard.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'chrome114',
    minify: true,
    logLevel: 'warning',
    // Read by later sources only; the baseline's own test hooks switch on window.__steelscopeTest.
    define: { STEELSCOPE_TEST_HOOKS: 'true' },
  });
  copyFileSync(join(src, 'media/dashboard.css'), join(out, 'dashboard.css'));
  return { dir: out, srcDir: src, remove: () => rmSync(src, { recursive: true, force: true }) };
}
