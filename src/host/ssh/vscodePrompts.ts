// SshPrompts in VS Code: a password or passphrase is asked with a masked input box, and kept in
// SecretStorage (never in settings, never logged) only if it worked and the user agrees; an
// unknown host key is shown by its SHA256 fingerprint in a modal dialog.
import * as vscode from 'vscode';
import type { SecretRef, SshPrompts } from './connection';

/** The SecretStorage key: a password belongs to user, host and port (two sshd on one host are two accounts). */
export function secretKey(secret: SecretRef): string {
  return secret.kind === 'password'
    ? `steelscope.ssh.password:${secret.user}@${secret.host}:${secret.port}`
    : `steelscope.ssh.passphrase:${secret.keyPath}`;
}

export class VscodeSshPrompts implements SshPrompts {
  /** Secrets typed in this session (not read from storage): only these are offered for keeping. */
  private readonly typed = new Set<string>();

  constructor(private readonly secrets: vscode.SecretStorage) {}

  async password(host: string, user: string, port: number): Promise<string | undefined> {
    return this.secret(
      { kind: 'password', host, port, user },
      `SSH password for ${user}@${host}${port === 22 ? '' : `:${port}`}`,
    );
  }

  async passphrase(keyPath: string): Promise<string | undefined> {
    return this.secret({ kind: 'passphrase', keyPath }, `Passphrase of the SSH key ${keyPath}`);
  }

  async confirmHostKey(host: string, fingerprint: string): Promise<boolean> {
    const trust = 'Trust and Connect';
    const answer = await vscode.window.showWarningMessage(
      `Steelscope: the authenticity of host ${host} cannot be established.`,
      {
        modal: true,
        detail: `Its key fingerprint is\n${fingerprint}\n\nCompare it with the one the host's administrator gives you (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host). Trusting adds it to ~/.ssh/known_hosts.`,
      },
      trust,
    );
    return answer === trust;
  }

  async remember(secret: SecretRef, value: string): Promise<void> {
    const key = secretKey(secret);
    if (!this.typed.delete(key)) return; // it came from storage already
    const what =
      secret.kind === 'password'
        ? `the password of ${secret.user}@${secret.host}:${secret.port}`
        : `the passphrase of ${secret.keyPath}`;
    const answer = await vscode.window.showInformationMessage(
      `Steelscope: remember ${what} in VS Code's secret storage?`,
      'Remember',
      'Not now',
    );
    if (answer === 'Remember') await this.secrets.store(key, value);
  }

  async forget(secret: SecretRef): Promise<void> {
    const key = secretKey(secret);
    this.typed.delete(key);
    await this.secrets.delete(key);
  }

  private async secret(ref: SecretRef, title: string): Promise<string | undefined> {
    const key = secretKey(ref);
    const stored = await this.secrets.get(key);
    if (stored !== undefined) return stored;
    const value = await vscode.window.showInputBox({
      title: `Steelscope: ${title}`,
      password: true,
      ignoreFocusOut: true,
      prompt: 'Press Enter to connect, Escape to cancel.',
    });
    if (value !== undefined) this.typed.add(key);
    return value;
  }
}
