// The SSH layer against a REAL OpenSSH server on 127.0.0.1 (test/sshd.ts) and REAL trainers on
// "the host", which is this machine reached over SSH: deploy, detached start, follow through a
// dropped connection with nothing lost or repeated, stop, checkpoint download, shell
// metacharacters in names, and the refusals (changed host key, untrusted key, wrong password).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { isPidAlive } from '../../src/shared/node/pid';
import { RunStore } from '../../src/host/runs/store';
import type { RunData } from '../../src/host/runs/types';
import { SshConnection, type SecretRef, type SshPrompts } from '../../src/host/ssh/connection';
import { checkHostKey, knownHostsLine } from '../../src/host/ssh/knownHosts';
import { RemoteTarget } from '../../src/host/ssh/remoteTarget';
import { refOnHost } from '../../src/host/chat/dashboardChat';
import { ServePool } from '../../src/host/chat/serveClient';
import {
  CLI,
  poetrySubset,
  readEvents,
  readMetrics,
  readSamples,
  ROOT,
  scratch,
  sleep,
  SMALL_SETS,
  TEST_ENV,
  readRunInfo,
  until as untilValue,
  writeLongMcTask,
  writeScorableCheckpoint,
} from '../helpers';
import { EvalCancelled, resultLine, runEval } from '../../src/host/runs/evalJob';
import { EVALS_FILE, type EvalProgress } from '../../src/shared/eval';
import { passwordSkipReason, PASSWORD_USER, sshdSkipReason, TestSshd } from '../sshd';
import { EventFolderReader } from '../../src/shared/node/formats/tfevents';
import { fold, points, PYTHON, WRITE_TFEVENTS, type TbEvent } from '../formats/fixtures';

const SETS = SMALL_SETS.filter((s) => s !== '--set');
const skip = sshdSkipReason();

/** Prompts that answer from a script and record what they were asked. */
class ScriptedPrompts implements SshPrompts {
  asked: string[] = [];
  forgotten: SecretRef[] = [];
  constructor(private readonly answers: { password?: string; trustHostKey?: boolean } = {}) {}
  async password(host: string, user: string, port: number) {
    this.asked.push(`password ${user}@${host}:${port}`);
    return this.answers.password;
  }
  async passphrase(keyPath: string) {
    this.asked.push(`passphrase ${keyPath}`);
    return undefined;
  }
  async confirmHostKey(host: string, fingerprint: string) {
    this.asked.push(`hostkey ${host} ${fingerprint}`);
    return this.answers.trustHostKey ?? true;
  }
  forget(secret: SecretRef) {
    this.forgotten.push(secret);
  }
}

/** Polls every 25 ms, for up to 60_000 ms by default (see helpers.until). */
const until = <T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> => untilValue(what, probe, timeoutMs, 25);

const readInfo = readRunInfo;

function reap(runDir: string | undefined): void {
  if (!runDir) return;
  try {
    const { pid } = readInfo(runDir);
    if (isPidAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // never started
  }
}

/** What the store holds for a run equals the run's files on the host, line for line. */
function assertSameAsFiles(data: RunData, runDir: string): void {
  const metrics = readMetrics(runDir);
  const kinds = new Set(metrics.map((m) => (typeof m.kind === 'string' ? m.kind : 'train')));
  for (const kind of kinds) {
    const rows = metrics.filter((m) => (typeof m.kind === 'string' ? m.kind : 'train') === kind);
    const table = data.tables.get(kind);
    assert.ok(table, `a ${kind} table`);
    assert.equal(table.length, rows.length, `${kind}: as many rows as lines`);
    rows.forEach((r, i) => {
      assert.equal(table.step[i], r.step, `${kind} row ${i}: step`);
      assert.equal(table.t[i], r.t, `${kind} row ${i}: t`);
      if (typeof r.loss === 'number') assert.equal(table.fields.get('loss')?.[i], r.loss, `${kind} row ${i}: loss`);
    });
  }
  assert.deepEqual(data.samples, readSamples(runDir), 'samples line for line');
  assert.deepEqual(data.events, readEvents(runDir), 'events line for line');
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describe('SSH host (real sshd on 127.0.0.1)', { skip }, () => {
  let sshd: TestSshd;
  let root: string;
  let data: string;
  let prompts: ScriptedPrompts;
  let target: RemoteTarget;
  const started: string[] = [];

  const connectAs = (p: SshPrompts, overrides = {}) =>
    SshConnection.connect({ host: sshd.hostConfig(overrides), prompts: p, knownHostsFile: sshd.knownHosts, agent: '' });
  const makeTarget = () =>
    new RemoteTarget({
      alias: 'test-sshd',
      connect: () => connectAs(prompts),
      distDir: join(ROOT, 'dist'),
      version: 'test',
      remoteRoot: join(root, 'home', '.steelscope'),
      env: { STEELSCOPE_CACHE: TEST_ENV.STEELSCOPE_CACHE ?? join(root, 'cache') },
      startTimeoutMs: 60_000,
      follower: { initialBackoffMs: 100, maxBackoffMs: 1000 },
    });

  before(async () => {
    sshd = await TestSshd.start({ password: passwordSkipReason() === undefined });
    root = scratch('ssh');
    // A data folder whose name a shell would split and expand: it must arrive literally.
    const dataDir = join(root, "data dir $HOME 'q'");
    mkdirSync(dataDir);
    data = poetrySubset(dataDir, 300);
    prompts = new ScriptedPrompts();
    target = makeTarget();
  });

  after(async () => {
    for (const dir of started) reap(dir);
    target?.disconnect();
    await sshd?.stop();
  });

  test('an unknown host key is asked about once, recorded, then known', async () => {
    const connection = await target.connection();
    assert.equal(prompts.asked.filter((a) => a.startsWith('hostkey')).length, 1);
    assert.match(prompts.asked[0], /^hostkey \[127\.0\.0\.1\]:\d+ SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal(checkHostKey('127.0.0.1', sshd.port, sshd.hostKeyBlob, sshd.knownHosts), 'known');
    const r = await connection.run('echo "$0" >/dev/null; printf %s ok');
    assert.deepEqual([r.code, r.stdout], [0, 'ok']);
  });

  test('ProxyJump: one hop, and two hops, through jump hosts (here the same sshd) to the target', async () => {
    for (const hops of [['jump'], ['jump-a', 'jump-b']]) {
      const resolved: string[] = [];
      const connection = await SshConnection.connect({
        host: sshd.hostConfig({ alias: 'behind', proxyJump: hops.map((host) => ({ host })) }),
        prompts,
        knownHostsFile: sshd.knownHosts,
        agent: '',
        resolveJump: (h) => (resolved.push(h), sshd.hostConfig({ alias: h })),
      });
      try {
        const r = await connection.run(`printf %s ${"'"}through${"'"}`);
        assert.deepEqual([r.code, r.stdout], [0, 'through'], hops.join(','));
        assert.deepEqual(resolved, [...hops].reverse(), 'the last hop is reached through the ones before it');
      } finally {
        connection.close();
      }
    }
  });

  test('deploy copies the CLI once per version and only what differs', async () => {
    const cli = await target.deploy();
    const deployDir = join(root, 'home', '.steelscope', 'test');
    assert.equal(cli, posix.join(deployDir, 'cli.js'));
    const manifest = JSON.parse(readFileSync(join(deployDir, 'manifest.json'), 'utf8')) as {
      files: Record<string, string>;
    };
    for (const [name, sha] of Object.entries(manifest.files)) assert.equal(sha256(join(deployDir, name)), sha, name);
    assert.ok(manifest.files['corpus/poetry.jsonl.gz'] && manifest.files['tfjs-backend-wasm.wasm']);
    const wasm = join(deployDir, 'tfjs-backend-wasm.wasm');
    const before = statSync(join(deployDir, 'cli.js')).mtimeMs;
    rmSync(wasm); // damaged on the host: the next deploy puts back just this file
    const again = makeTarget();
    try {
      await again.deploy();
    } finally {
      again.disconnect();
    }
    assert.equal(statSync(join(deployDir, 'cli.js')).mtimeMs, before, 'an unchanged file is not copied again');
    assert.equal(sha256(wasm), manifest.files['tfjs-backend-wasm.wasm']);
    assert.ok((await target.checkNode()) >= 20);
  });

  test('start, follow through a dropped connection (nothing lost or repeated), stop, fetch a checkpoint', async () => {
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    const runDir = await target.start({ name: '遠 run', preset: 'tiny', data, steps: 100_000, sets: SETS });
    started.push(runDir);
    try {
      assert.ok(existsSync(join(runDir, 'run.json')));
      assert.ok(existsSync(join(runDir, 'trainer.log')), 'the log moved into the run folder');
      assert.equal(readInfo(runDir).data.input, data, 'the data path arrived literally');
      assert.deepEqual(await target.listRunDirs(), [runDir]);
      const follower = target.createFollower(runDir);
      const key = store.addRemoteRun(target, runDir, follower);
      const rows = () => store.get(key)?.tables.get('train')?.length ?? 0;
      await until('train records over SSH', () => rows() >= 5);
      assert.equal(follower.state, 'connected');
      assert.equal(store.get(key)?.summary.name, '遠 run');

      const pid = readInfo(runDir).pid;
      assert.ok(sshd.killSessions() > 0, 'the sshd processes serving us are gone');
      await until('the drop to be noticed', () => follower.state !== 'connected' || follower.attempts > 1, 20_000);
      assert.ok(isPidAlive(pid), 'the trainer keeps running without its connection');
      const before = rows();
      await until(
        'the follower back and streaming',
        () => follower.state === 'connected' && follower.attempts >= 2 && rows() > before + 3,
        60_000,
      );

      await target.stop(runDir);
      await until('status stopped', () => store.get(key)?.summary.status === 'stopped');
      const step = readInfo(runDir).step;
      await until('the final checkpoint in the store', () =>
        store.get(key)?.summary.checkpoints.some((c) => c.complete && c.step === step),
      );
      const sizes = () => ['metrics.jsonl', 'samples.jsonl', 'events.jsonl'].map((f) => statSync(join(runDir, f)).size);
      await until('the follower to catch up with the files', () => {
        const o = follower.offsets;
        return sizes().join() === [o['metrics.jsonl'], o['samples.jsonl'], o['events.jsonl']].join();
      });
      store.flush();
      assertSameAsFiles(store.get(key)!, runDir);
      assert.ok(store.get(key)!.events.some((e) => e.kind === 'stop'));

      const local = join(root, 'fetched', `step-${step}`);
      const progress: number[] = [];
      await target.fetchCheckpoint(runDir, step, local, (p) => progress.push(p.bytes));
      const source = join(runDir, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
      const manifest = JSON.parse(readFileSync(join(local, 'manifest.json'), 'utf8')) as {
        files: { name: string; sha256: string; bytes: number }[];
      };
      for (const f of manifest.files) {
        assert.equal(sha256(join(local, f.name)), f.sha256, f.name);
        assert.equal(sha256(join(local, f.name)), sha256(join(source, f.name)));
      }
      assert.ok(existsSync(join(local, 'DONE')));
      assert.deepEqual(readdirSync(local).sort(), readdirSync(source).sort());
      assert.equal(
        progress.at(-1),
        manifest.files.reduce((s, f) => s + f.bytes, 0),
      );

      // A forged checkpoint on the host is refused before anything endless is read, with no DONE here.
      const forged = join(root, 'forged-run', 'checkpoints', `step-${String(step).padStart(8, '0')}`);
      cpSync(source, forged, { recursive: true });
      rmSync(join(forged, 'weights.bin'));
      symlinkSync('/dev/zero', join(forged, 'weights.bin'));
      const forgedLocal = join(root, 'fetched', 'forged');
      await assert.rejects(
        target.fetchCheckpoint(join(root, 'forged-run'), step, forgedLocal),
        /weights\.bin is not a regular file \(a symbolic link\)/,
      );
      assert.ok(!existsSync(join(forgedLocal, 'DONE')));
      writeFileSync(join(forged, 'manifest.json'), JSON.stringify({ ...manifest, files: [] }));
      await assert.rejects(
        target.fetchCheckpoint(join(root, 'forged-run'), step, forgedLocal),
        /files must list exactly weights\.json/,
      );

      // Chat with the checkpoint where it is: `steelscope serve` over an exec channel answers
      // as a local serve of the fetched copy does (greedy, same weights: the same text).
      const route = (ref: string) => {
        const dir = refOnHost(ref, target.id);
        return dir === undefined ? undefined : () => target.serve(dir);
      };
      const pool = new ServePool({ cliPath: CLI, nodePath: () => process.execPath, env: TEST_ENV, route });
      const serving = () =>
        execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
          .split('\n')
          .filter((l) => l.includes(`serve ${source}`));
      try {
        const params = { prompt: '春', max_tokens: 12, temperature: 0 };
        const tokens: string[] = [];
        const remote = await pool.generate(`${target.id}::${source}`, params, (t) => tokens.push(t)).done;
        const here = await pool.generate(local, params, () => {}).done;
        assert.ok(remote.completion_tokens > 0);
        assert.equal(tokens.join(''), remote.text, 'tokens streamed over SSH');
        assert.equal(remote.text, here.text);
        assert.equal(pool.live.length, 2);
        assert.ok(serving().length >= 1, 'a serve process on the host');

        // The connection drops mid-answer: the answer fails saying so, and the next prompt reconnects.
        let dropped: unknown;
        for (let seed = 1; seed < 6 && dropped === undefined; seed++) {
          let first: () => void = () => {};
          const streaming = new Promise<void>((r) => (first = r));
          const long = pool.generate(`${target.id}::${source}`, { prompt: '春', max_tokens: 1_000_000, seed }, () =>
            first(),
          );
          await Promise.race([streaming, long.done]);
          sshd.killSessions();
          dropped = await long.done.then(
            () => undefined,
            (err: unknown) => err,
          ); // undefined: it ended on its own first
        }
        assert.match(String(dropped), /connection closed/);
        const again = await pool.generate(`${target.id}::${source}`, params, () => {}).done;
        assert.equal(again.text, remote.text, 'answered again over a new connection');
      } finally {
        pool.dispose();
      }
      await until('the remote serve process to end', () => serving().length === 0, 20_000);
    } finally {
      reap(runDir);
      store.dispose();
    }
    await target.delete(runDir);
    assert.ok(!existsSync(runDir));
  });

  test('an event-file folder on the host follows live through a dropped connection: nothing lost or repeated', async () => {
    const dir = join(root, 'tb-run');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'events.out.tfevents.1700000000.remote');
    // The writer stops after step 9 until the test has dropped the connection (the gate file):
    // "still being written" then holds however slowly the follower starts on a loaded machine.
    const gate = join(root, 'tb-run-go-on');
    const events: TbEvent[] = Array.from({ length: 60 }, (_, step) => ({
      wall_time: 1700000000 + step,
      step,
      delay: 0.1,
      ...(step === 10 ? { wait_for: gate } : {}),
      values: [
        { tag: 'train/loss', simple_value: 3 - step / 100 },
        ...(step % 10 === 0 ? [{ tag: 'sample', text: `at ${step}` }] : []),
      ],
    }));
    const writer = spawn(PYTHON, [WRITE_TFEVENTS, path]);
    writer.stdin.end(JSON.stringify(events));
    const written = new Promise((resolve) => writer.once('exit', resolve));
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    try {
      const follower = target.createFollower(dir);
      const key = store.addRemoteRun(target, dir, follower);
      const rows = () => store.get(key)?.tables.get('train')?.length ?? 0;
      await until('event-file records over SSH', () => rows() >= 5);
      assert.ok(rows() <= 10, 'still being written');
      assert.ok(sshd.killSessions() > 0, 'the connection dropped');
      writeFileSync(gate, '');
      await until('the follower back', () => follower.state === 'connected' && follower.attempts >= 2, 60_000);
      await written;
      const expected = fold([await new EventFolderReader(dir).read()]);
      await until('every record', () => rows() === 60 && store.get(key)?.samples.length === 6);
      store.flush();
      const data = store.get(key)!;
      const got = {
        tables: data.tables,
        samples: data.samples.map((x) => ({ step: x.step, prompt: x.prompt, text: x.text })),
        malformed: 0,
      };
      assert.deepEqual(points(got), points(expected));
      assert.deepEqual(got.samples, expected.samples);
    } finally {
      writer.kill();
      store.dispose();
    }
  });

  test('Evaluate Checkpoint on the host: poetry-mc from the deployed tasks, progress over the channel, records in its evals.jsonl; Cancel ends it there', async () => {
    const run = join(root, 'eval-run');
    const checkpoint = await writeScorableCheckpoint(run, 12);
    const seen: EvalProgress[] = [];
    const table = await runEval(
      target,
      { checkpoint, task: 'poetry-mc', shots: 1, limit: 3 },
      { onProgress: (p) => seen.push(p) },
    );
    assert.deepEqual(seen.at(-1), { step: 12, what: 'poetry-mc/next_line', done: 6, total: 6 });
    assert.match(resultLine(table), /^poetry-mc: accuracy .* \(n 6\)$/);
    const written = readFileSync(join(run, EVALS_FILE), 'utf8').trim().split('\n');
    assert.equal(written.length, 3, 'two subjects and their average');

    // Cancelled at its first progress line: the process on the host is signalled and writes nothing.
    const other = join(root, 'eval-cancel');
    const second = await writeScorableCheckpoint(other, 5);
    // A task of minutes, not poetry-mc's 2 s on wasm: the kill sent over SSH must reach an eval still scoring.
    const task = writeLongMcTask(join(root, 'eval-cancel-task'));
    const abort = new AbortController();
    await assert.rejects(
      runEval(
        target,
        { checkpoint: second, task, shots: 5 },
        { signal: abort.signal, onProgress: () => abort.abort() },
      ),
      EvalCancelled,
    );
    const evalsOf = (pattern: string) =>
      execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(' eval ') && l.includes(pattern));
    await until('the eval process on the host to end', () => evalsOf(second).length === 0);
    assert.equal(existsSync(join(other, EVALS_FILE)), false, 'a cancelled eval writes nothing');
  });

  test('a run name with shell metacharacters is stored and shown literally and runs nothing', async () => {
    const pwned = '/tmp/pwned';
    rmSync(pwned, { force: true });
    const name = "it's; $(touch /tmp/pwned) `x`";
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    const runDir = await target.start({ name, preset: 'tiny', data, steps: 3, sets: SETS });
    started.push(runDir);
    try {
      assert.equal(readInfo(runDir).name, name);
      const key = store.addRemoteRun(target, runDir, target.createFollower(runDir));
      await until('the run to finish', () => store.get(key)?.summary.status === 'finished');
      assert.equal(store.get(key)?.summary.name, name);
      assert.ok(!existsSync(pwned), 'no command substitution ran');
    } finally {
      reap(runDir);
      store.dispose();
    }
  });

  test('a trainer that fails to start rejects start() with its log', async () => {
    await assert.rejects(target.start({ preset: 'tiny', data, steps: 10, sets: ['no_such_key=3'] }), (err: Error) => {
      assert.match(err.message, /exited before the run started/);
      assert.match(err.message, /no_such_key/);
      return true;
    });
  });

  test('Stop on a foreign run.json naming an unrelated process there: nothing is signalled, and it says why', async () => {
    const victim = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await new Promise((r) => victim.once('spawn', r));
    try {
      const runDir = join(root, 'home', '.steelscope', 'runs', 'foreign');
      mkdirSync(runDir, { recursive: true });
      const info = {
        format: 'steelscope.run/1',
        id: 'f1',
        name: 'foreign',
        createdAt: new Date().toISOString(),
        host: 'h',
        pid: victim.pid,
        status: 'running',
        step: 1,
        resumes: [],
        exit: null,
      };
      writeFileSync(join(runDir, 'run.json'), JSON.stringify(info));
      await assert.rejects(
        makeTarget().stop(runDir),
        /Not stopping run foreign on .*: process \d+ is not a steelscope trainer.*Nothing was signalled/,
      );
      await sleep(200);
      assert.ok(isPidAlive(victim.pid!), 'the unrelated process lives');
    } finally {
      victim.kill('SIGKILL');
    }
  });

  test('a data path relative to the home folder is read there, not in the runs folder', async () => {
    const c = await connectAs(prompts);
    const home = (await c.run('pwd')).stdout.trim();
    c.close();
    const runDir = await target.start({ preset: 'tiny', data: posix.relative(home, data), steps: 2, sets: SETS });
    started.push(runDir);
    assert.equal(readInfo(runDir).data.input, data);
  });

  test('Fine-tune from a checkpoint on the host: sft --from it on the deployed poetry-sft set', async () => {
    const base = await target.start({ name: 'base', preset: 'tiny', data, steps: 1, sets: SETS });
    started.push(base);
    await until('the base run to finish', () => readInfo(base).status === 'finished');
    const from = posix.join(base, 'checkpoints', 'step-00000001');
    const runDir = await target.start({ name: 'chat', preset: 'fine-tune', from, data: 'poetry-sft', steps: 2 });
    started.push(runDir);
    await until('the fine-tuning run to finish', () => readInfo(runDir).status === 'finished');
    const info = readInfo(runDir);
    assert.equal(info.template, 'chatml');
    assert.equal(info.base_checkpoint?.path, from);
    assert.equal(info.data.input, 'poetry-sft');
    const deployed = join(root, 'home', '.steelscope', 'test', 'sft', 'poetry-sft.jsonl');
    assert.equal(info.data.files[0].path, deployed, 'the set deployed with the CLI, not a copy found elsewhere');
  });

  test('an untrusted unknown host key: nothing is sent and nothing recorded', async () => {
    const p = new ScriptedPrompts({ trustHostKey: false, password: 'x' });
    const otherKnownHosts = join(root, 'other_known_hosts');
    await assert.rejects(
      SshConnection.connect({ host: sshd.hostConfig(), prompts: p, knownHostsFile: otherKnownHosts, agent: '' }),
      /was not trusted; nothing was sent/,
    );
    assert.ok(!existsSync(otherKnownHosts));
    assert.ok(!p.asked.some((a) => a.startsWith('password')));
  });

  test('StrictHostKeyChecking: yes refuses an unknown key unasked; accept-new and no add it unasked, as OpenSSH', async () => {
    const refusedFile = join(root, 'strict_yes_known_hosts');
    const strict = new ScriptedPrompts({ password: 'x' });
    const yes = { ...sshd.hostConfig(), strictHostKeyChecking: 'yes' as const };
    await assert.rejects(
      SshConnection.connect({ host: yes, prompts: strict, knownHostsFile: refusedFile, agent: '' }),
      /StrictHostKeyChecking is yes.*nothing was sent/,
    );
    assert.deepEqual(strict.asked, [], 'not asked to trust it, nor for a password');
    assert.ok(!existsSync(refusedFile));
    for (const mode of ['accept-new', 'no'] as const) {
      const file = join(root, `strict_${mode}_known_hosts`);
      const p = new ScriptedPrompts({ trustHostKey: false });
      const c = await SshConnection.connect({
        host: { ...sshd.hostConfig(), strictHostKeyChecking: mode },
        prompts: p,
        knownHostsFile: file,
        agent: '',
      });
      c.close();
      assert.ok(!p.asked.some((a) => a.startsWith('hostkey')), `${mode}: not asked`);
      assert.equal(checkHostKey('127.0.0.1', sshd.port, sshd.hostKeyBlob, file), 'known', `${mode}: the key was added`);
    }
  });

  test('a host key on a @revoked line is refused, even where another line lists it as known', async () => {
    const file = join(root, 'revoked_known_hosts');
    const line = knownHostsLine('127.0.0.1', sshd.port, sshd.hostKeyBlob);
    writeFileSync(file, `${line}\n@revoked * ${line.split(' ').slice(1).join(' ')}\n`);
    const p = new ScriptedPrompts({ password: 'x' });
    await assert.rejects(
      SshConnection.connect({ host: sshd.hostConfig(), prompts: p, knownHostsFile: file, agent: '' }),
      /is marked @revoked.*nothing was sent/,
    );
    assert.deepEqual(p.asked, []);
  });

  test('a wrong password fails with a clear message; the right one works', { skip: passwordSkipReason() }, async () => {
    const wrong = new ScriptedPrompts({ password: 'not the password' });
    await assert.rejects(
      connectAs(wrong, { user: PASSWORD_USER, identityFiles: ['/nonexistent/key'] }),
      (err: Error) => {
        assert.equal(
          err.message,
          `Authentication failed for ${PASSWORD_USER}@127.0.0.1:${sshd.port}: wrong password or key.`,
        );
        return true;
      },
    );
    assert.deepEqual(
      wrong.forgotten,
      [{ kind: 'password', host: '127.0.0.1', port: sshd.port, user: PASSWORD_USER }],
      'a stored wrong password is dropped',
    );
    const right = await connectAs(new ScriptedPrompts({ password: sshd.password }), {
      user: PASSWORD_USER,
      identityFiles: ['/nonexistent/key'],
    });
    try {
      assert.equal((await right.run('id -un')).stdout.trim(), PASSWORD_USER);
    } finally {
      right.close();
    }
  });

  test('a CHANGED host key is refused with a clear message and no command runs', async () => {
    target.disconnect();
    await sshd.regenerateHostKey();
    const p = new ScriptedPrompts({ password: sshd.password });
    const runsBefore = readdirSync(join(root, 'home', '.steelscope', 'runs'));
    await assert.rejects(connectAs(p), (err: Error) => {
      assert.match(err.message, /^The host key of \[127\.0\.0\.1\]:\d+ has CHANGED/);
      assert.match(err.message, /nothing was sent/);
      return true;
    });
    assert.deepEqual(p.asked, [], 'neither asked to trust it nor for a password');
    const refused = makeTarget();
    await assert.rejects(refused.start({ preset: 'tiny', data, steps: 3, sets: SETS }), /CHANGED/);
    assert.deepEqual(readdirSync(join(root, 'home', '.steelscope', 'runs')), runsBefore, 'no run folder was made');
    assert.equal(refused.state, 'disconnected');
    assert.match(refused.lastError ?? '', /CHANGED/);
  });
});
