// How tests drive the webviews' toolkit controls (webview/common/ui.ts) the way a user does: open a
// dropdown and click an option, read a control's value. Shared by the render and e2e tests, so a
// change of toolkit changes the tests here only. (Playwright's CSS selectors pierce open shadow
// roots: `vscode-text-area textarea` is the component's own text area.)
import type { Locator } from 'playwright-core';

/** The value of a vscode-dropdown (or any toolkit control with a value). */
export function valueOf(control: Locator): Promise<string> {
  return control.evaluate((e) => String((e as HTMLElement & { value?: unknown }).value ?? ''));
}

/** Opens the dropdown and clicks the option with this value. */
export async function choose(dropdown: Locator, value: string): Promise<void> {
  await dropdown.click();
  await dropdown.locator(`vscode-option[value="${value.replace(/["\\]/g, '\\$&')}"]`).click();
}

/** The texts of a dropdown's options. */
export function optionTexts(dropdown: Locator): Promise<string[]> {
  return dropdown
    .locator('vscode-option')
    .allTextContents()
    .then((texts) => texts.map((t) => t.trim()));
}

/** The native button inside a toolkit button (what is clicked and what is disabled). */
export function buttonNamed(scope: Locator, text: string): Locator {
  return scope.locator('vscode-button', { hasText: text }).locator('button');
}
