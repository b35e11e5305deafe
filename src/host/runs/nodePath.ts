// Which `node` runs the trainer. Never process.execPath inside an editor: in desktop VS Code that
// is Electron (which would load tfjs's native addon against the wrong ABI, or not at all) and in
// code-server it is the server's private copy. The user's setting wins; otherwise the first
// `node` on PATH.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `command` on PATH (with PATHEXT suffixes on Windows), like `which`. */
export function findOnPath(command: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string | undefined {
  const dirs = (env.PATH ?? env.Path ?? '').split(delimiter).filter(Boolean);
  const suffixes = platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').map((s) => s.toLowerCase())] : [''];
  for (const dir of dirs) {
    for (const suffix of suffixes) {
      const candidate = join(dir, command + suffix);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * The node binary for trainers: `setting` (steelscope.nodePath: an absolute path, or a command name
 * looked up on PATH) or else `node` on PATH. Throws a message a user can act on when none is found.
 */
export function resolveNodePath(setting: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const wanted = setting?.trim() || 'node';
  if (isAbsolute(wanted)) {
    if (isExecutableFile(wanted)) return wanted;
    throw new Error(`steelscope.nodePath is set to ${wanted}, which is not an executable file.`);
  }
  const found = findOnPath(wanted, env);
  if (found) return found;
  throw new Error(`No \`${wanted}\` found on PATH. Install Node.js 20 or later, or set steelscope.nodePath to its binary.`);
}
