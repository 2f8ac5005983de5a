import { defineConfig } from 'vitest/config';

// Two runs of the public-API tests, one per backend, each forced so that a
// missing addon fails loudly instead of silently testing the JS path twice.
// Tests of the native internals (kernels against a float64 reference, ISAs,
// threads, the loader, the build files, the package, the demo) run once.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { test: { name: 'native', include: ['test/**/*.test.ts'], exclude: ['test/arm64/**'], env: { BATCHNORM_BACKEND: 'native' } } },
      // SyncBatchNorm against BatchNorm and its bad-collective cases: the split-phase kernels' JS twins too.
      { test: { name: 'js', include: ['test/api/**/*.test.ts', 'test/sync/syncbatchnorm.test.ts', 'test/sync/errors.test.ts'], env: { BATCHNORM_BACKEND: 'js' } } },
    ],
  },
});
