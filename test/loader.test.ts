/**
 * The loader, in child processes (it chooses once per process): the addon
 * missing or broken → the WebAssembly path, or without it the JS path, with
 * one warning saying why and how to build; where the addon is looked for (a
 * local build, then the prebuilt one); BATCHNORM_BACKEND forcing any path;
 * bad settings → clear errors.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect, it } from 'vitest';

// Tests here run Node child processes: seconds each on a quiet machine. Each
// test states its limit, generous enough for every core being busy with other
// work; a child is killed a little before, so that a hang fails with its output.
const TEST_MS = 240_000,
  CHILD_MS = 100_000;

const root = new URL('..', import.meta.url);
const script = `
  const bn = await import('./dist/index.js');
  await import('./dist/index.js');
  const m = new bn.BatchNorm1d(2);
  const y = m.forward({ data: new Float32Array([1, 2, 3, 5]), shape: [2, 2] });
  console.log(JSON.stringify({ info: bn.backendInfo(), caps: bn.capabilities(), y: Array.from(y.data) }));
`;

function run(env: Record<string, string>) {
  const clean = { ...process.env };
  delete clean.BATCHNORM_BACKEND;
  delete clean.BATCHNORM_ISA;
  delete clean.BATCHNORM_WASM;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, env: { ...clean, ...env }, encoding: 'utf8', timeout: CHILD_MS });
}

const missing = join(tmpdir(), 'no-such-dir', 'batchnorm.node');
const noWasm = join(tmpdir(), 'no-such-dir', 'batchnorm.wasm');

it('falls back to the WebAssembly path with one warning when the addon is missing', () => {
  const r = run({ BATCHNORM_ADDON: missing });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.info).toMatchObject({ backend: 'wasm', isa: 'simd128', threads: 1 });
  expect(out.caps).toEqual(['simd128']);
  expect(out.y[0]).toBeCloseTo(-1, 4);
  expect(r.stderr.match(/BATCHNORM_FALLBACK/g)).toHaveLength(1);
  expect(r.stderr).toContain('using the WebAssembly path');
  expect(r.stderr).toContain(`no compiled addon at ${missing}`);
  expect(r.stderr).toContain('npm rebuild batchnorm');
});

it(
  'falls back to the JS path with one warning when neither the addon nor the WebAssembly module loads',
  () => {
    const r = run({ BATCHNORM_ADDON: missing, BATCHNORM_WASM: noWasm });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.info).toMatchObject({ backend: 'js', isa: 'js', threads: 1 });
    expect(out.caps).toEqual(['js']);
    expect(out.y[0]).toBeCloseTo(-1, 4);
    expect(r.stderr.match(/BATCHNORM_FALLBACK/g)).toHaveLength(1);
    expect(r.stderr).toContain(`no compiled addon at ${missing}, and no WebAssembly module at ${noWasm}`);
    expect(r.stderr).toContain('npm rebuild batchnorm');
  },
  TEST_MS,
);

it('falls back to the JS path when the engine runs no WebAssembly (node --jitless)', () => {
  const clean: NodeJS.ProcessEnv = { ...process.env, BATCHNORM_ADDON: missing };
  delete clean.BATCHNORM_BACKEND;
  const r = spawnSync(process.execPath, ['--jitless', '--input-type=module', '-e', script], { cwd: root, env: clean, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout).info.backend).toBe('js');
  expect(r.stderr).toContain('this JavaScript engine runs no WebAssembly');
});

it('a WebAssembly file that does not compile is a reason, not a crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bn-'));
  const broken = join(dir, 'batchnorm.wasm');
  writeFileSync(broken, 'not a module');
  const r = run({ BATCHNORM_ADDON: missing, BATCHNORM_WASM: broken });
  expect(r.status, r.stderr).toBe(0);
  expect(JSON.parse(r.stdout).info.backend).toBe('js');
  expect(r.stderr).toContain(`${broken} failed to load`);
  const forced = run({ BATCHNORM_BACKEND: 'wasm', BATCHNORM_WASM: broken });
  expect(forced.status).not.toBe(0);
  expect(forced.stderr).toContain('BATCHNORM_BACKEND=wasm, but the WebAssembly kernels are unavailable');
  expect(forced.stderr).toContain('npm run build:wasm');
});

it(
  'falls back with the load error when the addon file is broken',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'bn-'));
    const broken = join(dir, 'batchnorm.node');
    writeFileSync(broken, 'not a shared object');
    const r = run({ BATCHNORM_ADDON: broken });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).info.backend).toBe('wasm');
    expect(r.stderr).toContain(`${broken} failed to load`);
  },
  TEST_MS,
);

it(
  'falls back when BATCHNORM_ISA names an ISA that cannot run, saying so',
  () => {
    const r = run({ BATCHNORM_ISA: process.arch === 'x64' ? 'neon' : 'avx512' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).info.backend).toBe('wasm');
    expect(r.stderr).toMatch(/BATCHNORM_ISA=\w+ (is not an ISA of this build|cannot run on this CPU)/);
    // The fix it suggests is the variable, not a rebuild (which would not help).
    expect(r.stderr).toContain('unset BATCHNORM_ISA');
    expect(r.stderr).not.toContain('npm rebuild');
  },
  TEST_MS,
);

it(
  'BATCHNORM_BACKEND=native without the addon is a clear error',
  () => {
    const r = run({ BATCHNORM_ADDON: missing, BATCHNORM_BACKEND: 'native' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('BATCHNORM_BACKEND=native, but the native addon is unavailable');
  },
  TEST_MS,
);

it(
  'BATCHNORM_BACKEND=js or =wasm forces that path without a warning; native is the default',
  () => {
    const js = run({ BATCHNORM_BACKEND: 'js' });
    expect(JSON.parse(js.stdout).info.backend).toBe('js');
    expect(js.stderr).not.toContain('BATCHNORM_FALLBACK');
    const wasm = run({ BATCHNORM_BACKEND: 'wasm' });
    expect(wasm.status, wasm.stderr).toBe(0);
    expect(JSON.parse(wasm.stdout).info).toMatchObject({ backend: 'wasm', isa: 'simd128', threads: 1 });
    expect(wasm.stderr).toBe('');
    const native = run({});
    expect(native.status, native.stderr).toBe(0);
    expect(JSON.parse(native.stdout).info.backend).toBe('native');
    expect(native.stderr).toBe('');
  },
  TEST_MS,
);

it(
  'an unknown BATCHNORM_BACKEND is an error',
  () => {
    const r = run({ BATCHNORM_BACKEND: 'gpu' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('Expected BATCHNORM_BACKEND to be "native", "wasm" or "js" (or unset) but received "gpu"');
  },
  TEST_MS,
);

it(
  'looks in build/Release, build/Debug, then prebuilds/<platform>-<arch>/: the first that loads wins',
  () => {
    // A scratch package (dist/, package.json) with a broken local build and a working prebuilt addon.
    const dir = mkdtempSync(join(tmpdir(), 'bn-layout-'));
    cpSync(new URL('../dist', import.meta.url), join(dir, 'dist'), { recursive: true });
    copyFileSync(new URL('../package.json', import.meta.url), join(dir, 'package.json'));
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    writeFileSync(join(dir, 'build', 'Release', 'batchnorm.node'), 'not a shared object');
    const prebuilt = join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'batchnorm.napi.glibc.node');
    mkdirSync(dirname(prebuilt), { recursive: true });
    copyFileSync(new URL('../build/Release/batchnorm.node', import.meta.url), prebuilt);
    const clean = { ...process.env };
    delete clean.BATCHNORM_BACKEND;
    delete clean.BATCHNORM_ISA;
    const runIn = () => spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, env: clean, encoding: 'utf8', timeout: CHILD_MS });

    const both = runIn();
    expect(both.status, both.stderr).toBe(0);
    expect(JSON.parse(both.stdout).info.backend).toBe('native');
    expect(both.stderr).toBe('');

    writeFileSync(prebuilt, 'not a shared object either');
    const none = runIn();
    expect(JSON.parse(none.stdout).info.backend).toBe('js');
    expect(none.stderr).toContain(`${join(dir, 'build', 'Release', 'batchnorm.node')} failed to load`);
    expect(none.stderr).toContain(`${prebuilt} failed to load`);
    expect(none.stderr).toContain('npm rebuild batchnorm --build-from-source');
  },
  TEST_MS,
);
