// The extension's settings, read in one place with their defaults resolved, and the node binary
// that runs the CLI (trainers, serve processes, the backend installer) resolved from them.
import * as vscode from 'vscode';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as v from 'valibot';
import { resolveNodePath } from './runs/nodePath';

export function runsRoot(): string {
  const configured = vscode.workspace.getConfiguration('steelscope').get<string>('runsRoot', '').trim();
  if (configured) return configured.replace(/^~(?=$|\/)/, homedir());
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder ? join(folder.uri.fsPath, 'runs') : join(homedir(), '.steelscope', 'runs');
}

const HostRunsFolders = v.record(v.string(), v.string());

/** An SSH host's runs folder (steelscope.hostRunsFolders, by alias); undefined: `~/.steelscope/runs` there. */
export function hostRunsFolder(alias: string): string | undefined {
  const folders: unknown = vscode.workspace.getConfiguration('steelscope').get('hostRunsFolders', {});
  if (!v.is(HostRunsFolders, folders)) return undefined;
  return Object.hasOwn(folders, alias) ? folders[alias]?.trim() || undefined : undefined;
}

/** The configured node binary, or '' to search PATH. */
function nodePathSetting(): string {
  return vscode.workspace.getConfiguration('steelscope').get<string>('nodePath', '').trim();
}

/**
 * The node that runs the CLI: steelscope.nodePath, else `node` on PATH. Where neither is found,
 * the setting's value (or `node`) all the same, so that spawning it fails with a message that
 * names the setting, and `problem` says what to fix.
 */
export function trainerNode(): { path: string; problem?: string } {
  try {
    return { path: resolveNodePath(nodePathSetting()) };
  } catch (err) {
    return { path: nodePathSetting() || 'node', problem: err instanceof Error ? err.message : String(err) };
  }
}

/** The python3 (with torch) the user named for the PyTorch engine (steelscope.pythonPath); undefined: search PATH. */
export function pythonPath(): string | undefined {
  return vscode.workspace.getConfiguration('steelscope').get<string>('pythonPath', '').trim() || undefined;
}

/** The dashboard charts' default smoothing weight (steelscope.dashboard.smoothing). */
export function dashboardSmoothing(fallback: number): number {
  return vscode.workspace.getConfiguration('steelscope').get<number>('dashboard.smoothing', fallback);
}

export function defaultPreset(): string {
  return vscode.workspace.getConfiguration('steelscope').get<string>('defaultPreset', 'tiny');
}

/**
 * The environment of trainers on this machine: STEELSCOPE_THREADS from `steelscope.threads`
 * (0 leaves the choice to the trainer: two threads where there are two cores).
 */
export function trainerEnv(): NodeJS.ProcessEnv {
  const threads = vscode.workspace.getConfiguration('steelscope').get<number>('threads', 0);
  return Number.isInteger(threads) && threads > 0
    ? { ...process.env, STEELSCOPE_THREADS: String(threads) }
    : process.env;
}

const VersionedManifest = v.looseObject({ version: v.string() });

/** The extension's version from its package.json (the folder its CLI is deployed to on SSH hosts). */
export function extensionVersion(context: vscode.ExtensionContext): string | undefined {
  const manifest: unknown = context.extension.packageJSON;
  return v.is(VersionedManifest, manifest) ? manifest.version : undefined;
}
