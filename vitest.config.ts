import { defineConfig } from 'vitest/config';

// Three groups: fast package tests first (two files at a time), then the whole-system tests one
// file at a time, since each of those runs several service processes on a 2-core machine and
// some of them assert on latency (a sync answer within 10 s); last the API contract check over
// every response the first two recorded.
const shared = {
  resolve: { conditions: ['docorch-source'] },
  ssr: { resolve: { conditions: ['docorch-source'] } },
};

export default defineConfig({
  ...shared,
  test: {
    globalSetup: ['packages/testkit/src/vitest/global-setup.ts'],
    setupFiles: ['packages/testkit/src/vitest/record-responses.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'packages',
          include: ['packages/*/test/**/*.test.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: ['services/*/test/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: ['services/api/test/contract/**'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Last: checks every API response the suites above recorded against /openapi.json.
        extends: true,
        test: {
          name: 'contract',
          include: ['services/api/test/contract/**/*.test.ts'],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
