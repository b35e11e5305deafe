// The host's log: the "Steelscope" output channel (Output view, with levels the user can set),
// not the extension host's console, which users never see. Modules without `vscode` (the store)
// take a HostLogger instead, and get this channel from extension.ts.
import * as vscode from 'vscode';

let channel: vscode.LogOutputChannel | undefined;

export function hostLog(): vscode.LogOutputChannel {
  channel ??= vscode.window.createOutputChannel('Steelscope', { log: true });
  return channel;
}

/** Disposes the channel on deactivation (a later hostLog() makes a new one). */
export function disposeHostLog(): void {
  channel?.dispose();
  channel = undefined;
}
