// Save Chart as PNG from a dashboard: asks where (beside the first run on this machine, else in the
// workspace or home folder), then writes the picture the webview drew.
import { homedir } from 'node:os';
import * as vscode from 'vscode';
import { hostLog } from '../log';
import type { RunSummary } from '../runs/types';
import { pngBytes, pngFileName } from './chartPng';

export async function saveChartPng(runs: readonly RunSummary[], chart: string, dataUrl: string): Promise<void> {
  const png = pngBytes(dataUrl);
  if (!png.ok) {
    hostLog().warn(`dashboard: the ${chart} chart was not saved: ${png.error}`);
    return;
  }
  const local = runs.find((r) => r.hostId === 'local');
  const folder = local
    ? vscode.Uri.file(local.dir)
    : (vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(homedir()));
  const target = await vscode.window.showSaveDialog({
    defaultUri: vscode.Uri.joinPath(
      folder,
      pngFileName(
        runs.map((r) => r.name),
        chart,
      ),
    ),
    filters: { 'PNG image': ['png'] },
    saveLabel: 'Save',
    title: `Save the ${chart} chart as PNG`,
  });
  if (!target) return;
  try {
    await vscode.workspace.fs.writeFile(target, png.bytes);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const message = `Steelscope: could not write ${target.fsPath} (${why}). Choose another folder.`;
    void vscode.window.showErrorMessage(message);
    return;
  }
  void vscode.window.showInformationMessage(`Steelscope: saved the ${chart} chart to ${target.fsPath}.`);
}
