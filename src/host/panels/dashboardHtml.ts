// The dashboard's HTML shell, without vscode so the render test loads the very same page. Strict
// CSP: scripts only with this load's nonce or from the extension's own resource origin (the entry
// is an ES module with the nonce; the chunks it imports, among them the UI toolkit's after the first
// chart paint, come from beside it: scripts/build.mjs), styles only from the extension (or with a second
// nonce of their own), images from the extension or data: URLs, no network, no inline handlers,
// no 'unsafe-inline' anywhere. The page holds no data: everything arrives as messages and is
// written with textContent or drawn on canvases.
//
// The UI toolkit (webview/common/ui.ts, FAST web components) styles its components with
// constructable stylesheets (adoptedStyleSheets), which style-src does not govern, and sets design
// tokens through the CSSOM. Once, when it loads, FAST probes :focus-visible support with a <style>
// element, which it gives the nonce of <meta property="csp-nonce">: that is the style nonce (never
// the script one), so the probe passes the CSP without 'unsafe-inline'.
import { randomBytes } from 'node:crypto';

export interface DashboardHtmlOptions {
  /** webview.cspSource */
  cspSource: string;
  nonce: string;
  /** The nonce of styles: a different one, as the page can read it from its csp-nonce meta. */
  styleNonce: string;
  scriptUri: string;
  styleUri: string;
  title: string;
}

export function makeNonce(): string {
  return randomBytes(18)
    .toString('base64')
    .replace(/[^A-Za-z0-9]/g, '');
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function dashboardHtml(o: DashboardHtmlOptions): string {
  const csp = [
    "default-src 'none'",
    `script-src ${o.cspSource} 'nonce-${o.nonce}'`,
    `style-src ${o.cspSource} 'nonce-${o.styleNonce}'`,
    `img-src ${o.cspSource} data:`,
    `font-src ${o.cspSource}`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta property="csp-nonce" content="${o.styleNonce}">
<link rel="stylesheet" href="${escapeHtml(o.styleUri)}" nonce="${o.styleNonce}">
<title>${escapeHtml(o.title)}</title>
</head>
<body>
<div id="app" aria-busy="true">Loading…</div>
<script type="module" nonce="${o.nonce}" src="${escapeHtml(o.scriptUri)}"></script>
</body>
</html>`;
}
