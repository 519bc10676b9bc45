// Lint is part of `npm test`: size limits in the spirit of pepr, no floating promises.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      'dist/**',
      '.device/**',
      '.gpu-*/**',
      'images/**',
      'helm/**',
      'tests/k8s/**',
      '**/*.js',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's describe/it return promises the runner itself awaits.
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'max-depth': ['error', 4],
      'max-params': ['error', 5],
      'no-console': 'error',
      // Prettier (printWidth 120, `prettier --check` in lint) lays code out; what it cannot break is left to this.
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreUrls: true, ignoreRegExpLiterals: true },
      ],
    },
  },
  {
    files: [
      'api/**/*.ts',
      'lib/**/*.ts',
      'controller/**/*.ts',
      'agent/**/*.ts',
      'aggregator/**/*.ts',
      'report/**/*.ts',
      'local/**/*.ts',
    ],
    rules: {
      '@typescript-eslint/explicit-function-return-type': [
        'error',
        { allowExpressions: true, allowTypedFunctionExpressions: true },
      ],
      complexity: ['error', 15],
    },
  },
  // The data flow is the import graph (DESIGN.md): engines never import the runtimes that compose them.
  ...[
    {
      files: ['api/**/*.ts', 'lib/**/*.ts', 'agent/**/*.ts', 'aggregator/**/*.ts', 'report/**/*.ts'],
      banned: ['controller', 'local', 'cli'],
    },
    { files: ['local/**/*.ts'], banned: ['controller', 'cli'] },
    { files: ['controller/**/*.ts'], banned: ['agent', 'local', 'cli'] },
  ].map(({ files, banned }) => ({
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^(\\.\\./)+(${banned.join('|')})/`,
              message: 'engines never import the runtimes that compose them (DESIGN.md)',
            },
          ],
        },
      ],
    },
  })),
  { files: ['cli/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'tests/**/*.ts'], rules: { 'no-console': 'off' } },
);
