// Issue 4's end-to-end scenario: a real OpenSSH server on 127.0.0.1 (its own host key, key auth)
// is added from the command palette — the unknown host key is shown and trusted — and a tiny run
// is started there from "Start Training…", followed over SSH in the Runs view and the dashboard,
// stopped, and its last checkpoint chatted with (served on the host).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sshdSkipReason, TestSshd } from '../sshd';
import {
  addSshHost,
  e2eSkip,
  finishedAnswer,
  lossPointsGrow,
  removeSshdRuns,
  runWithStatus,
  sshHome,
  startTraining,
  stopRun,
  withVSCode,
} from './harness';

const HOST = 'e2e-box';
/** Unique per test process: the host's runs folder is the login user's real ~/.steelscope/runs. */
const RUN = `ssh-run-${process.pid}`;

test(
  'add an SSH host, trust its key, start a run there from the palette and follow it',
  { skip: e2eSkip() || sshdSkipReason(), timeout: 420_000 },
  async () => {
    const sshd = await TestSshd.start();
    try {
      await withVSCode({ name: 'ssh', env: { HOME: sshHome(sshd, HOST) } }, async (vs) => {
        await vs.openWorkbench();
        await addSshHost(vs, HOST);

        // Steps enough that the run is still going when Stop comes, however fast this machine trains
        // compared with how fast the window answers (300 steps could end first: finished, not stopped).
        await startTraining(vs, { target: new RegExp(HOST), steps: 100_000, name: RUN });

        const dash = await vs.webviewWhenOpen(RUN, 120_000);
        const { first, later } = await lossPointsGrow(dash);
        assert.ok(later > first, `records arrive over SSH (${first} → ${later})`);

        const rows = await runWithStatus(vs, RUN, /running/);
        assert.ok(
          rows.some((row) => row.label === HOST),
          'the run is listed under its host',
        );
        await vs.screenshot('explorer');

        await stopRun(vs, RUN);
        await vs.screenshot('stopped');

        // Chat with the stopped run's last checkpoint where it is: `steelscope serve` runs on the host.
        await vs.runCommand('Steelscope: Chat with Checkpoint');
        await vs.pickItem(RUN);
        await vs.pickItem(/^step \d+/);
        const chat = await vs.frameOfWebview(RUN);
        const prompt = chat.locator('.chat textarea');
        await prompt.waitFor({ state: 'visible', timeout: 30_000 });
        await prompt.fill('春');
        await prompt.press('Enter');
        await finishedAnswer(chat, 120_000);
        // An 8-step model may end its reply at once (<|endoftext|>, no text): what shows the remote
        // serve answered is the completed reply's note counting the tokens it generated.
        const note = (await chat.locator('.chat-answer .chat-answer-note').first().textContent()) ?? '';
        assert.match(note, /\b[1-9]\d* tokens?\b/, `the remote checkpoint answered (note: ${note})`);
        await vs.screenshot('chat-remote');
      });
    } finally {
      await sshd.stop();
      removeSshdRuns(RUN);
    }
  },
);
