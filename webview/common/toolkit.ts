// The UI toolkit itself (@vscode/webview-ui-toolkit, web components on FAST), in a chunk of its
// own: webview/common/ui.ts imports this module dynamically after the dashboard's first chart
// paint, so the page's start neither evaluates nor compiles the toolkit (FAST's design tokens and
// decorators run when it is evaluated). Only ui.ts imports this file.
//
// Importing from the package index costs nothing beyond the components listed below: the
// package declares no side effects, so esbuild keeps only those and their FAST parts.
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

const COMPONENTS = {
  button: [vsCodeButton],
  checkbox: [vsCodeCheckbox],
  dataGrid: [vsCodeDataGrid, vsCodeDataGridRow, vsCodeDataGridCell],
  dropdown: [vsCodeDropdown, vsCodeOption],
  panels: [vsCodePanels, vsCodePanelTab, vsCodePanelView],
  textArea: [vsCodeTextArea],
  textField: [vsCodeTextField],
};

export type ComponentName = keyof typeof COMPONENTS;

/** Defines a component's tags (with the parts it is made of) with the toolkit's design system. */
export function register(name: ComponentName): void {
  provideVSCodeDesignSystem().register(...COMPONENTS[name].map((component) => component()));
}
