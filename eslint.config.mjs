import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'bench/peers/**', 'bench/results/**', 'coverage/**', 'src/dashboard/vendor/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
      // SQL only with bindings: the SQL text given to raw() / whereRaw() / … must not interpolate or
      // concatenate values (test/integration/security.test.ts checks that these selectors fire).
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name=/^(raw|[a-z]+Raw)$/] > TemplateLiteral.arguments:first-child[expressions.length>0]",
          message: 'Build SQL with bindings (? / ??), never by interpolating values into raw().',
        },
        {
          selector: "CallExpression[callee.property.name=/^(raw|[a-z]+Raw)$/] > BinaryExpression.arguments:first-child[operator='+']",
          message: 'Build SQL with bindings (? / ??), never by concatenating values into raw().',
        },
      ],
    },
  },
  {
    // Functions of up to ~60 lines (the house rule); a longer one carries an eslint-disable comment saying
    // why. The dashboard's views are left out: a component's length is its markup.
    files: ['src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }] },
  },
  {
    // The dashboard runs in the browser (bundled by scripts/build-dashboard.mjs), not in Node.
    files: ['src/dashboard/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // Tests EXPLAIN fixed query texts of their own; no request input reaches them.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unused-expressions': 'off', '@typescript-eslint/no-non-null-assertion': 'off', 'no-restricted-syntax': 'off' },
  },
);
