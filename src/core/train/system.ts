// The trainer's system sampler: one system.jsonl record at start and every 10 s (format in
// src/shared/system.ts). It runs on a timer, never inside the step loop, and nothing it does can
// slow or stop training: nvidia-smi runs as an asynchronous child with a timeout, its absence or
// failure only leaves the GPU fields out, and a failed write ends the sampler, not the run. A
// training step is synchronous, so a tick due during one runs right after it; the ticks aim at
// start + k × interval, so a late one does not push the later ones back.
import { execFile } from 'node:child_process';
import { freemem, totalmem } from 'node:os';
import {
  gpuFields,
  NVIDIA_SMI_ARGS,
  parseNvidiaSmiCsv,
  SYSTEM_INTERVAL_MS,
  type SystemRecord,
} from '../../shared/system';

/** The sampler's time: a monotonic clock and a timer (a test injects its own to check the schedule). */
export interface SamplerClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `fn` once after `ms` without keeping the process alive; returns what cancels it. */
  schedule(fn: () => void, ms: number): () => void;
}

const REAL_CLOCK: SamplerClock = {
  now: () => performance.now(),
  schedule: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    timer.unref(); // never keeps a finished trainer alive
    return () => clearTimeout(timer);
  },
};

export interface SystemSamplerOptions {
  /** Default SYSTEM_INTERVAL_MS, or STEELSCOPE_SYSTEM_INTERVAL_MS (meant for tests only). */
  intervalMs?: number;
  /** nvidia-smi's time limit per query. Default 5 s. */
  queryTimeoutMs?: number;
  /** Default the process's performance.now() and setTimeout. */
  clock?: SamplerClock;
}

/**
 * How long after `now` the next tick is due: at the next multiple of `interval` after `started`
 * still ahead, so a tick held up by a long step is neither repeated nor pushes the later ones back.
 */
export function nextTickDelay(started: number, now: number, interval: number): number {
  const due = started + (Math.floor((now - started) / interval) + 1) * interval;
  return Math.max(0, due - now);
}

export interface SystemSampler {
  stop(): void;
}

/** The interval the environment asks for (tests shorten it), else the format's 10 s. */
export function samplerInterval(env: NodeJS.ProcessEnv = process.env): number {
  const asked = Number(env.STEELSCOPE_SYSTEM_INTERVAL_MS);
  return Number.isFinite(asked) && asked >= 100 ? asked : SYSTEM_INTERVAL_MS;
}

/** GPU rows from nvidia-smi, or none (not installed, failed, timed out): never throws. */
function queryGpus(timeoutMs: number): Promise<{ fields: Record<string, number | string>; missing: boolean }> {
  return new Promise((resolve) => {
    execFile('nvidia-smi', NVIDIA_SMI_ARGS, { timeout: timeoutMs, windowsHide: true }, (err, stdout) => {
      const missing = (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
      resolve({ fields: err ? {} : gpuFields(parseNvidiaSmiCsv(String(stdout))), missing });
    });
  });
}

const r3 = (value: number) => Number(value.toFixed(3));

/** Starts sampling; `write` appends one record to system.jsonl and may throw (then sampling ends). */
export function startSystemSampler(
  write: (record: SystemRecord) => void,
  currentStep: () => number,
  options: SystemSamplerOptions = {},
): SystemSampler {
  const interval = options.intervalMs ?? samplerInterval();
  const queryTimeout = options.queryTimeoutMs ?? 5000;
  const clock = options.clock ?? REAL_CLOCK;
  const started = clock.now();
  let last = { cpu: process.cpuUsage(), wall: started };
  let nvidiaSmi = true; // false once it is known not to exist here
  let cancelTimer: (() => void) | undefined;
  let stopped = false;

  const sample = async (): Promise<void> => {
    const t = Date.now();
    const wall = clock.now();
    const cpu = process.cpuUsage();
    const cpuMicros = cpu.user - last.cpu.user + cpu.system - last.cpu.system;
    const elapsedMs = Math.max(1, wall - last.wall);
    last = { cpu, wall };
    const record: SystemRecord = {
      t,
      step: currentStep(),
      cpu_pct: Number(((cpuMicros / 1000 / elapsedMs) * 100).toFixed(1)),
      rss_gb: r3(process.memoryUsage.rss() / 1e9),
      host_mem_used_gb: r3((totalmem() - freemem()) / 1e9),
      host_mem_total_gb: r3(totalmem() / 1e9),
    };
    if (nvidiaSmi) {
      const gpus = await queryGpus(queryTimeout);
      nvidiaSmi = !gpus.missing;
      Object.assign(record, gpus.fields);
    }
    if (!stopped) write(record);
  };

  const tick = (): void => {
    sample()
      .then(() => {
        if (!stopped) cancelTimer = clock.schedule(tick, nextTickDelay(started, clock.now(), interval));
      })
      .catch(() => {
        stopped = true; // the folder went away or the disk is full: the run decides what that means
      });
  };
  // The first record measures CPU since the process started.
  last = { cpu: { user: 0, system: 0 }, wall: started - process.uptime() * 1000 };
  tick();
  return {
    stop: () => {
      stopped = true;
      cancelTimer?.();
    },
  };
}
