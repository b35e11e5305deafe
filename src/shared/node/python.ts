// Finding a Python with PyTorch for the PyTorch engine: the interpreter named by the user
// (--python, STEELSCOPE_PYTHON, the steelscope.pythonPath setting) or else the first python3 that
// imports torch, and what that torch sees (CUDA, GPUs, MPS). Plain Node, for the CLI and the
// extension host alike (over SSH the host runs the same probe script on the remote side).
import { spawnSync } from 'node:child_process';
import * as v from 'valibot';

/** Prints one JSON line: the torch the interpreter imports, or why it cannot. */
export const TORCH_PROBE_SCRIPT = `
import json, sys
out = {"python": sys.version.split()[0], "executable": sys.executable}
try:
    import torch
except Exception as err:
    out.update(ok=False, error=f"{type(err).__name__}: {err}")
else:
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    out.update(ok=True, torch=torch.__version__, cuda=torch.version.cuda if cuda else None,
               gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
               mps=bool(mps is not None and mps.is_available()))
print(json.dumps(out))
`;

const ProbeSchema = v.variant('ok', [
  v.object({
    ok: v.literal(true),
    python: v.string(),
    executable: v.string(),
    torch: v.string(),
    cuda: v.nullable(v.string()),
    gpus: v.array(v.string()),
    mps: v.boolean(),
  }),
  v.object({ ok: v.literal(false), python: v.string(), executable: v.string(), error: v.string() }),
]);

export type TorchProbe = v.InferOutput<typeof ProbeSchema>;
export type TorchFound = Extract<TorchProbe, { ok: true }>;

/** What to install, said once wherever torch is missing. */
export const INSTALL_TORCH_HINT =
  'Install PyTorch for that Python (pip install torch; on Debian/Ubuntu: apt-get install python3-torch), ' +
  'or name a Python that has it with --python PATH or STEELSCOPE_PYTHON.';

/** The probe's last stdout line as a checked TorchProbe; undefined when it is not one. */
export function parseTorchProbe(stdout: string): TorchProbe | undefined {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = v.safeParse(ProbeSchema, JSON.parse(line));
    return parsed.success ? parsed.output : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the probe with one interpreter; undefined when it cannot be run at all. */
export function probePython(python: string, timeoutMs = 120_000): TorchProbe | undefined {
  const r = spawnSync(python, ['-c', TORCH_PROBE_SCRIPT], { encoding: 'utf8', timeout: timeoutMs });
  if (r.error || r.status !== 0) return undefined;
  return parseTorchProbe(r.stdout);
}

/** The interpreters to try, in order: the one named, else python3 on PATH, then Debian's. */
export function pythonCandidates(named?: string): string[] {
  return named ? [named] : ['python3', '/usr/bin/python3'];
}

export type TorchSearch = { found: TorchFound } | { reason: string };

/**
 * The first candidate whose probe imports torch, or the reason none does (each one tried, then
 * `hint`: what to install). `probe` runs one interpreter (here, or on an SSH host).
 */
export async function searchTorch(
  candidates: string[],
  probe: (python: string) => Promise<TorchProbe | undefined>,
  hint = INSTALL_TORCH_HINT,
): Promise<TorchSearch> {
  const tried: string[] = [];
  for (const python of candidates) {
    const result = await probe(python);
    if (result?.ok) return { found: result };
    tried.push(triedNote(python, result));
  }
  return { reason: noTorchReason(tried, hint) };
}

function triedNote(python: string, probe: TorchProbe | undefined): string {
  if (probe === undefined) return `${python} (cannot be run)`;
  return probe.ok ? python : `${python} (Python ${probe.python}: ${probe.error})`;
}

function noTorchReason(tried: string[], hint: string): string {
  return `No Python with PyTorch found: tried ${tried.join(', ')}. ${hint}`;
}

/**
 * The interpreter to use: `explicit` when given (or STEELSCOPE_PYTHON), else the first of
 * python3 on PATH and /usr/bin/python3 that imports torch. Returns the probe, or the reason none fits.
 */
export function findTorch(explicit?: string): TorchSearch {
  const tried: string[] = [];
  for (const python of pythonCandidates(explicit ?? process.env.STEELSCOPE_PYTHON)) {
    const probe = probePython(python);
    if (probe?.ok) return { found: probe };
    tried.push(triedNote(python, probe));
  }
  return { reason: noTorchReason(tried, INSTALL_TORCH_HINT) };
}

/** For people: "PyTorch 2.5.1 · CUDA 12.4 · 8 × H100 80GB", "PyTorch 1.13.0 · CPU". */
export function describeTorch(t: TorchFound): string {
  const parts = [`PyTorch ${t.torch}`];
  if (t.cuda !== null) {
    parts.push(`CUDA ${t.cuda}`);
    const names = [...new Set(t.gpus)];
    parts.push(names.map((n) => `${t.gpus.filter((g) => g === n).length} × ${n.replace(/^NVIDIA /, '')}`).join(', '));
  } else {
    parts.push(t.mps ? 'MPS' : 'CPU');
  }
  return parts.join(' · ');
}
