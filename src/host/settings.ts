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
