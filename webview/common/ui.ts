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
// Importing from the package index costs nothing beyond the components listed below: the
// package declares no side effects, so esbuild keeps only those and their FAST parts (importing
// each from its own dist/<component> module gives a byte-identical bundle).
import {
  provideVSCodeDesignSystem,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDataGrid,
  vsCodeDataGridCell,
  vsCodeDataGridRow,
  vsCodeDropdown,
  vsCodeOption,
  vsCodePanels,
  vsCodePanelTab,
  vsCodePanelView,
  vsCodeTextArea,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';
import { el } from './messenger';

// Each component is registered the first time a control of its kind is made, not all at start:
// a page registers (and FAST builds the templates and styles of) only what it shows, and the
// controls of a tab nobody opened cost nothing.
const COMPONENTS = {
  button: [vsCodeButton],
  checkbox: [vsCodeCheckbox],
  dataGrid: [vsCodeDataGrid, vsCodeDataGridRow, vsCodeDataGridCell],
  dropdown: [vsCodeDropdown, vsCodeOption],
  panels: [vsCodePanels, vsCodePanelTab, vsCodePanelView],
  textArea: [vsCodeTextArea],
  textField: [vsCodeTextField],
};
const registered = new Set<keyof typeof COMPONENTS>();

/** Registers a component (with the parts it is made of) with the toolkit's design system, once. */
function ensureRegistered(name: keyof typeof COMPONENTS): void {
  if (registered.has(name)) return;
  registered.add(name);
  provideVSCodeDesignSystem().register(...COMPONENTS[name].map((component) => component()));
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
  return {
    root,
    get disabled() {
      return root.disabled;
    },
    set disabled(v: boolean) {
      root.disabled = v;
    },
    onClick: (fn) =>
      root.addEventListener('click', () => {
        if (!root.disabled) fn();
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
      root.value = current;
    },
    setOptions(next, value = current) {
      choices = [...next];
      current = pick(value);
      const held = options();
      const same =
        held.length === choices.length &&
        choices.every((c, i) => held[i].value === c.value && held[i].textContent === c.label);
      if (same) {
        root.value = current;
        return;
      }
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
  return {
    root,
    get checked() {
      return root.checked;
    },
    set checked(v: boolean) {
      if (root.checked === v) return;
      fromCode = true;
      root.checked = v;
      fromCode = false;
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

const textInput = (root: ValueElement): TextInput => ({
  root,
  get value() {
    return root.value;
  },
  set value(v: string) {
    root.value = v;
  },
  get focused() {
    return root.matches(':focus-within') || document.activeElement === root;
  },
  focus: () => root.focus(),
});

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
      root.activeid = `tab-${tab}`;
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
  root.columnDefinitions = columns.map((c) => ({ columnDataKey: c.key, title: c.title }));
  root.gridTemplateColumns = columns.map((c) => c.width).join(' ');
  return {
    root,
    setRows: (rows) => {
      root.rowsData = [...rows];
    },
  };
}

/** A native range slider (the toolkit has none), styled by dashboard.css with theme colours. */
export function slider(label: string, attrs: Record<string, string>): HTMLInputElement {
  return el('input', { type: 'range', ...attrs, 'aria-label': label });
}
