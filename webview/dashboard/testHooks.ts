// What the render tests and bench/dashboard.ts read from the page: the chart objects and the time
// of the first paint after a snapshot. Only the test bundle (dist-test/webview, built with
// STEELSCOPE_TEST_HOOKS=true by scripts/build.mjs) calls these; the production bundle drops them.
declare global {
  interface Window {
    /** The Chart.js objects by chart key. */
    __steelscopeCharts?: Record<string, object>;
    /** performance.now() of the first paint after a snapshot. */
    __steelscopePainted?: number;
  }
}

export function exposeCharts(charts: ReadonlyMap<string, object>): void {
  window.__steelscopeCharts = Object.fromEntries(charts);
}

export function markPainted(): void {
  window.__steelscopePainted = performance.now();
}
