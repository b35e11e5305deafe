// Lint: typescript-eslint recommended, no `any`, and the layer rule of DESIGN.md:
// src/shared, src/core and src/cli run as plain Node (locally or on an SSH host), so they never
// import `vscode` or touch the DOM; src/host and webview never import the model core.
import tseslint from 'typescript-eslint';

const noVscode = {
  paths: [{ name: 'vscode', message: 'src/core, src/cli and src/shared run outside VS Code: never import vscode.' }],
  patterns: [
    { group: ['**/host/**', '**/webview/**'], message: 'core/cli/shared must not depend on host or webview code.' },
  ],
};
const noCore = {
  patterns: [
    {
      group: ['**/core/**', '**/cli/**'],
      message: 'host and webview never import the model core: talk to the CLI through the run directory.',
    },
  ],
};
const domGlobals = ['window', 'document', 'navigator', 'HTMLElement', 'localStorage'].map((name) => ({
  name,
  message: 'No DOM in src/core, src/cli or src/shared.',
}));

export default tseslint.config(
  { ignores: ['dist/**', 'dist-test/**', 'node_modules/**', 'test/golden/**/*.py', '.test-tmp/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/core/**/*.ts', 'src/cli/**/*.ts', 'src/shared/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', noVscode], 'no-restricted-globals': ['error', ...domGlobals] },
  },
  {
    files: ['src/host/**/*.ts', 'src/extension.ts'],
    rules: { 'no-restricted-imports': ['error', noCore] },
  },
  {
    files: ['webview/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'vscode', message: 'webview code uses acquireVsCodeApi, never vscode.' }],
          patterns: [
            ...noCore.patterns,
            { group: ['**/shared/node/**'], message: 'src/shared/node needs Node (fs); webviews run in a browser.' },
          ],
        },
      ],
    },
  },
);
