// The webviews' controls: the one module that knows the UI toolkit (@vscode/webview-ui-toolkit,
// web components on FAST). Everything else asks this module for a button, a dropdown, a checkbox,
// a text field, a text area, tabs or a table and gets small interfaces of our own back, so moving
// to the toolkit's successor (the toolkit is deprecated upstream) touches this file only.
// The toolkit has no range slider: the smoothing and sample-step sliders stay native inputs.
//
// Under the webviews' CSP (no 'unsafe-inline' style or script, see src/host/panels/dashboardHtml.ts)
// the components style themselves with constructable stylesheets (adoptedStyleSheets), which a
// style-src directive does not govern, and the toolkit reads the --vscode-* theme variables from
// the body and follows theme changes itself.
//
// The toolkit is loaded after the dashboard's first chart paint (loadToolkit, called by
// webview/dashboard/main.ts): it lives in a chunk of its own (webview/common/toolkit.ts; the build
// splits the bundle), so the page's start neither compiles nor evaluates it. Until then the
// controls are toolkit tags not yet defined, whose space dashboard.css reserves (:not(:defined)).
// Nothing reads or sets a control's properties before its tag is defined: the values set
// meanwhile are kept here (`afterLoad`) and given to the element once it is upgraded.
import { el } from './messenger';
import type { ComponentName } from './toolkit';

let toolkit: { register: (name: ComponentName) => void } | undefined;
let loading: Promise<void> | undefined;
const wanted = new Set<ComponentName>();
const registered = new Set<ComponentName>();
const pending: (() => void)[] = [];

/**
 * Registers a component the first time a control of its kind is made, not all at start: a page
 * registers (and FAST builds the templates and styles of) only what it shows. Before the toolkit
 * has loaded, the name is noted and registered when it arrives.
 */
function ensureRegistered(name: ComponentName): void {
  wanted.add(name);
  if (!toolkit || registered.has(name)) return;
  registered.add(name);
  toolkit.register(name);
}

/** Loads the toolkit's chunk, defines the tags of the controls made so far and gives them their values. */
export function loadToolkit(): Promise<void> {
  loading ??= import('./toolkit').then((module) => {
    toolkit = module;
    for (const name of wanted) ensureRegistered(name);
    for (const apply of pending.splice(0)) apply();
  });
  return loading;
}

/** `root`, upgraded to its toolkit class (a no-op when it already is), once the toolkit has loaded. */
function live<E extends HTMLElement>(root: E): E | undefined {
  if (!toolkit) return undefined;
  customElements.upgrade(root); // a control made before the load and not in the page is not upgraded yet
  return root;
}

/** Runs `apply` on the upgraded element now, or once the toolkit has loaded (in the order asked). */
function afterLoad<E extends HTMLElement>(root: E, apply: (root: E) => void): void {
  const now = live(root);
  if (now) apply(now);
  else pending.push(() => apply(live(root) ?? root));
}

/** The toolkit's elements, seen through the few properties we use. */
interface ValueElement extends HTMLElement {
  value: string;
}
interface OptionElement extends ValueElement {
  selected: boolean;
}
interface DisableableElement extends HTMLElement {
  disabled: boolean;
}
interface CheckElement extends HTMLElement {
  checked: boolean;
}
interface PanelsElement extends HTMLElement {
  activeid: string;
}
interface GridElement extends HTMLElement {
  rowsData: object[];
  columnDefinitions: { columnDataKey: string; title: string }[] | null;
  gridTemplateColumns: string;
}

declare global {
  interface HTMLElementTagNameMap {
    'vscode-button': DisableableElement;
    'vscode-checkbox': CheckElement;
    'vscode-data-grid': GridElement;
    'vscode-dropdown': ValueElement;
    'vscode-option': OptionElement;
    'vscode-panels': PanelsElement;
    'vscode-panel-tab': HTMLElement;
    'vscode-panel-view': HTMLElement;
    'vscode-text-area': ValueElement;
    'vscode-text-field': ValueElement;
  }
}

export interface Button {
  readonly root: HTMLElement;
  disabled: boolean;
  onClick(fn: () => void): void;
}

/** A push button; `primary` for the one action a row is about. */
export function button(text: string, options: { primary?: boolean; title?: string } = {}): Button {
  const attrs: Record<string, string> = { appearance: options.primary ? 'primary' : 'secondary' };
  if (options.title) attrs.title = options.title;
  ensureRegistered('button');
  const root = el('vscode-button', attrs, text);
  let disabled = false;
  return {
    root,
    get disabled() {
      return disabled;
    },
    set disabled(v: boolean) {
      disabled = v;
      afterLoad(root, (button) => (button.disabled = v));
    },
    onClick: (fn) =>
      root.addEventListener('click', () => {
        if (!disabled) fn();
      }),
  };
}

export interface Choice {
  value: string;
  label: string;
}

export interface Dropdown {
  readonly root: HTMLElement;
  /** The chosen value: the user's last choice, or what was last set. */
  value: string;
  /** Replaces the options; `value` is chosen if it is one of them, else the first. */
  setOptions(choices: readonly Choice[], value?: string): void;
  /** Called on the user's choice only, never when the value is set from code. */
  onChange(fn: (value: string) => void): void;
}

/**
 * A dropdown whose value is known at once: the component takes its new options a moment after
 * they are inserted (a slotchange), so its own `value` is briefly stale after setOptions.
 */
export function dropdown(label: string): Dropdown {
  ensureRegistered('dropdown');
  const root = el('vscode-dropdown', { 'aria-label': label, position: 'below' });
  let current = '';
  let choices: readonly Choice[] = [];
  const pick = (v: string) => (choices.some((c) => c.value === v) ? v : (choices[0]?.value ?? ''));
  const listeners: ((value: string) => void)[] = [];
  root.addEventListener('change', () => {
    if (root.value === current) return;
    current = root.value;
    for (const fn of listeners) fn(current);
  });
  const options = () => [...root.children].filter((o): o is OptionElement => o.localName === 'vscode-option');
  return {
    root,
    get value() {
      return current;
    },
    set value(v: string) {
      current = pick(v);
      const chosen = current;
      afterLoad(root, (dropdown) => (dropdown.value = chosen));
    },
    setOptions(next, value = current) {
      choices = [...next];
      current = pick(value);
      const held = options();
      const same =
        held.length === choices.length &&
        choices.every((c, i) => held[i].getAttribute('value') === c.value && held[i].textContent === c.label);
      const chosen = current;
      if (same) return afterLoad(root, (dropdown) => (dropdown.value = chosen));
      // New options carry `selected`, which the component reads when it takes them.
      const option = (c: Choice) =>
        el('vscode-option', c.value === current ? { value: c.value, selected: '' } : { value: c.value }, c.label);
      root.replaceChildren(...choices.map(option));
    },
    onChange: (fn) => {
      listeners.push(fn);
    },
  };
}

export interface Checkbox {
  readonly root: HTMLElement;
  checked: boolean;
  /** Called on the user's change only. */
  onChange(fn: (checked: boolean) => void): void;
}

export function checkbox(label: string): Checkbox {
  ensureRegistered('checkbox');
  const root = el('vscode-checkbox', {}, label);
  // The component fires "change" for changes made from code as well; those are not the user's.
  let fromCode = false;
  let checked = false; // as set from code while the toolkit is loading
  return {
    root,
    get checked() {
      return live(root)?.checked ?? checked;
    },
    set checked(v: boolean) {
      checked = v;
      afterLoad(root, (box) => {
        if (box.checked === v) return;
        fromCode = true;
        box.checked = v;
        fromCode = false;
      });
    },
    onChange: (fn) =>
      root.addEventListener('change', () => {
        if (!fromCode) fn(root.checked);
      }),
  };
}

export interface TextInput {
  readonly root: HTMLElement;
  value: string;
  /** Whether the user is typing in it (so a refresh from the host does not overwrite it). */
  readonly focused: boolean;
  focus(): void;
}

function textInput(root: ValueElement): TextInput {
  let value = ''; // as set from code while the toolkit is loading
  return {
    root,
    get value() {
      return live(root)?.value ?? value;
    },
    set value(v: string) {
      value = v;
      afterLoad(root, (input) => (input.value = v));
    },
    get focused() {
      return root.matches(':focus-within') || document.activeElement === root;
    },
    focus: () => afterLoad(root, (input) => input.focus()),
  };
}

/** A one-line field with its label beside it (the label is the component's own). */
export function textField(label: string, attrs: Record<string, string> = {}): TextInput {
  ensureRegistered('textField');
  return textInput(el('vscode-text-field', { ...attrs, 'aria-label': label }, label));
}

export function textArea(label: string, attrs: Record<string, string> = {}): TextInput {
  ensureRegistered('textArea');
  return textInput(el('vscode-text-area', { resize: 'vertical', ...attrs, 'aria-label': label }));
}

export interface Tabs<T extends string> {
  readonly root: HTMLElement;
  show(tab: T): void;
  /** Called when the user picks a tab. */
  onChange(fn: (tab: T) => void): void;
}

/**
 * Tabs whose content `fill` puts in the tab's pane the first time the tab is shown (the pane is
 * in its tab by then): the views of tabs nobody opened are neither built nor rendered at start
 * (they cost the page's start as much as the charts).
 */
export function tabs<T extends string>(
  labels: ReadonlyMap<T, string>,
  label: string,
  fill: (tab: T, pane: HTMLElement) => void,
): Tabs<T> {
  ensureRegistered('panels');
  const root = el('vscode-panels', { 'aria-label': label });
  const views = new Map<T, HTMLElement>();
  const tabList: HTMLElement[] = [];
  for (const [name, text] of labels) {
    tabList.push(el('vscode-panel-tab', { id: `tab-${name}`, 'data-tab': name }, text));
    views.set(name, el('vscode-panel-view', { id: `view-${name}`, 'data-tab': name }));
  }
  root.append(...tabList, ...views.values());
  const filled = new Set<T>();
  const attach = (name: T) => {
    if (filled.has(name)) return;
    filled.add(name); // first: fill may show this tab again (the chat asks for its own tab)
    const pane = el('div', { class: 'tab-pane' });
    views.get(name)?.append(pane);
    fill(name, pane);
  };
  const names = [...labels.keys()];
  const active = () => names.find((n) => `tab-${n}` === root.activeid);
  const listeners: ((tab: T) => void)[] = [];
  root.addEventListener('change', (e) => {
    if (e.target !== root) return; // a dropdown's change inside a pane bubbles here too
    const name = active();
    if (name === undefined) return;
    attach(name);
    for (const fn of listeners) fn(name);
  });
  return {
    root,
    show: (tab) => {
      attach(tab);
      afterLoad(root, (panels) => (panels.activeid = `tab-${tab}`));
    },
    onChange: (fn) => {
      listeners.push(fn);
    },
  };
}

export interface Column {
  key: string;
  title: string;
  /** A CSS grid track size, e.g. "8em" or "1fr". */
  width: string;
}

export interface Table {
  readonly root: HTMLElement;
  /** Rows of display text by column key; cells are set as text, never as markup. */
  setRows(rows: readonly Record<string, string>[]): void;
}

export function table(label: string, columns: readonly Column[]): Table {
  ensureRegistered('dataGrid');
  const root = el('vscode-data-grid', { 'aria-label': label, 'generate-header': 'sticky' });
  afterLoad(root, (grid) => {
    grid.columnDefinitions = columns.map((c) => ({ columnDataKey: c.key, title: c.title }));
    grid.gridTemplateColumns = columns.map((c) => c.width).join(' ');
  });
  return {
    root,
    setRows: (rows) => {
      const copy = [...rows];
      afterLoad(root, (grid) => (grid.rowsData = copy));
    },
  };
}

/** A native range slider (the toolkit has none), styled by dashboard.css with theme colours. */
export function slider(label: string, attrs: Record<string, string>): HTMLInputElement {
  return el('input', { type: 'range', ...attrs, 'aria-label': label });
}
