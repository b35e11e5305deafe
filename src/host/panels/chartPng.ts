// Save Chart as PNG, the part without vscode: the bytes of a chart's data URL (checked to be a PNG,
// as the webview is untrusted) and the file name offered for it.
import { PNG_DATA_URL_PREFIX } from '../../shared/protocol';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The PNG in a data URL, or a message saying why it is not one. */
export function pngBytes(dataUrl: string): { ok: true; bytes: Uint8Array } | { ok: false; error: string } {
  if (!dataUrl.startsWith(PNG_DATA_URL_PREFIX)) {
    return { ok: false, error: 'the chart did not arrive as a PNG data URL' };
  }
  const base64 = dataUrl.slice(PNG_DATA_URL_PREFIX.length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) return { ok: false, error: 'the chart picture is not valid base64' };
  const bytes = new Uint8Array(Buffer.from(base64, 'base64'));
  if (!PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return { ok: false, error: 'the chart picture is not a PNG' };
  return { ok: true, bytes };
}

/** "run-a-loss.png": the runs' names and the chart's, with anything a file name cannot hold replaced. */
export function pngFileName(runNames: readonly string[], chart: string): string {
  const runs =
    runNames.length > 2 ? `${runNames.slice(0, 2).join('-')}-and-${runNames.length - 2}-more` : runNames.join('-');
  const name = [runs, chart].filter((p) => p.length > 0).join('-');
  const safe = name
    .replace(/[^\p{L}\p{N}._-]+/gu, '_')
    .replace(/^[._]+/, '')
    .slice(0, 120);
  return `${safe || 'chart'}.png`;
}
