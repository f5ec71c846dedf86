import { defineConfig } from 'vitest/config';

// `npm run test:e2e`: the demo in a real browser (needs Debian's chromium; .ci/run installs it).
export default defineConfig({
  test: {
    include: ['test-e2e/**/*.e2e.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 90_000,
  },
});
