// Extension entry: wiring only. The model core never loads here; runs are CLI child processes.
import * as vscode from 'vscode';

export function activate(context: vscode.ExtensionContext): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('steelscope.showVersion', () => {
      const version = (context.extension.packageJSON as { version?: string }).version ?? 'unknown';
      void vscode.window.showInformationMessage(`Steelscope ${version}`);
    }),
  );
}

export function deactivate(): void {}
