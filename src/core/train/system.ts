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

export interface SystemSamplerOptions {
  /** Default SYSTEM_INTERVAL_MS, or STEELSCOPE_SYSTEM_INTERVAL_MS (meant for tests only). */
  intervalMs?: number;
  /** nvidia-smi's time limit per query. Default 5 s. */
  queryTimeoutMs?: number;
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
  const started = performance.now();
  let last = { cpu: process.cpuUsage(), wall: started };
  let nvidiaSmi = true; // false once it is known not to exist here
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const sample = async (): Promise<void> => {
    const t = Date.now();
    const wall = performance.now();
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
        if (stopped) return;
        // The next multiple of the interval still ahead: a tick held up by a long step is not repeated.
        const due = started + (Math.floor((performance.now() - started) / interval) + 1) * interval;
        timer = setTimeout(tick, Math.max(0, due - performance.now()));
        timer.unref(); // never keeps a finished trainer alive
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
      if (timer) clearTimeout(timer);
    },
  };
}
