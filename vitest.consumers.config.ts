import { defineConfig } from 'vitest/config';

// `npm run test:consumers`: the packed package installed into fresh projects and run on every runtime the
// README names (test-consumers/). Needs the npm registry; .ci/run calls it after `npm test`.
export default defineConfig({
  test: {
    include: ['test-consumers/**/*.test.ts'],
    globalSetup: ['test-consumers/global-setup.ts'],
    pool: 'forks',
    testTimeout: 240_000,
    hookTimeout: 600_000,
  },
});
