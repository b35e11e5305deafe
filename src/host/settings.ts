// The extension's settings, read in one place with their defaults resolved.
import * as vscode from 'vscode';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function runsRoot(): string {
  const configured = vscode.workspace.getConfiguration('steelscope').get<string>('runsRoot', '').trim();
  if (configured) return configured.replace(/^~(?=$|\/)/, homedir());
  const folder = vscode.workspace.workspaceFolders?.[0];
  return folder ? join(folder.uri.fsPath, 'runs') : join(homedir(), '.steelscope', 'runs');
}

/** The configured node binary, or '' to search PATH. */
export function nodePathSetting(): string {
  return vscode.workspace.getConfiguration('steelscope').get<string>('nodePath', '').trim();
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
  return Number.isInteger(threads) && threads > 0 ? { ...process.env, STEELSCOPE_THREADS: String(threads) } : process.env;
}
