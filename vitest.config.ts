import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Three runs of the public-API tests, one per backend, each forced so that a
// missing addon (or wasm/batchnorm.wasm: scripts/build-wasm.sh) fails loudly
// instead of silently testing the JS path twice.
// Tests of the native internals (kernels against a float64 reference, ISAs,
// threads, the loader, the build files, the package, the demo, the README's
// examples) run once.
//
// Time limits: every test that spawns processes or does heavy work states its
// own, generous enough for a machine whose cores are all busy with other work.
// The default below is for the rest (milliseconds each); `extends: true` makes
// the projects inherit it (an inline project does not otherwise, and would get
// vitest's 5 s).
// Workers: one per core. vitest's default for a run is cores − 1 (a core kept
// for the main process, which here only collects results): one worker on a
// 2-core machine, so the whole suite ran file after file.
export default defineConfig({
  test: {
    maxWorkers: availableParallelism(),
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'native', include: ['test/**/*.test.ts'], exclude: ['test/arm64/**'], env: { BATCHNORM_BACKEND: 'native' } } },
      // SyncBatchNorm against BatchNorm and its bad-collective cases run on every backend: the split-phase kernels' JS twins serve wasm and js.
      {
        extends: true,
        test: {
          name: 'wasm',
          include: ['test/api/**/*.test.ts', 'test/sync/syncbatchnorm.test.ts', 'test/sync/errors.test.ts'],
          env: { BATCHNORM_BACKEND: 'wasm' },
        },
      },
      {
        extends: true,
        test: {
          name: 'js',
          include: ['test/api/**/*.test.ts', 'test/sync/syncbatchnorm.test.ts', 'test/sync/errors.test.ts'],
          env: { BATCHNORM_BACKEND: 'js' },
        },
      },
    ],
  },
});
