// The webview side of the protocol: the only place that touches acquireVsCodeApi. Outgoing
// messages are typed; incoming ones are checked against the protocol before anyone sees them.
import { checkHostMessage, type HostToWebview, type WebviewToHost } from '../../src/shared/protocol';

interface VsCodeApi {
  postMessage(message: unknown): void;
  /** What an earlier bundle of this webview saved: unknown until checked. */
  getState(): unknown;
  setState(state: unknown): void;
}

declare function acquireVsCodeApi(): VsCodeApi;

export class Messenger<S> {
  private readonly api: VsCodeApi = acquireVsCodeApi();

  post(message: WebviewToHost): void {
    this.api.postMessage(message);
  }

  /** Calls `handler` with every well-formed host message; malformed ones are logged and dropped. */
  listen(handler: (message: HostToWebview) => void): void {
    window.addEventListener('message', (event: MessageEvent<unknown>) => {
      const checked = checkHostMessage(event.data);
      if (checked.ok) handler(checked.message);
      else console.warn(`steelscope: dropped a malformed host message (${checked.error})`);
    });
  }

  /** vscode.getState/setState: survives the webview being hidden and a window reload (check it: an older bundle may have saved it). */
  get state(): unknown {
    return this.api.getState();
  }

  set state(value: S) {
    this.api.setState(value);
  }
}

/** Calls `fn` at most once per `ms`, always with the latest arguments (trailing edge). */
export function throttle<A extends unknown[]>(fn: (...args: A) => void, ms: number): (...args: A) => void {
  let timer: number | undefined;
  let latest: A;
  return (...args: A) => {
    latest = args;
    if (timer !== undefined) return;
    timer = window.setTimeout(() => {
      timer = undefined;
      fn(...latest);
    }, ms);
  };
}

/** A DOM element with attributes and text; never innerHTML, so no string becomes markup. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
