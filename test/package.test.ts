/**
 * The package as npm users get it: what the tarball ships (scripts/check-pack.mjs),
 * how CommonJS loads it, and the install script's choices (scripts/install.mjs)
 * in a scratch copy of the package, with the build tools on or off the PATH.
 * The real installs of the packed tarball, one per case, are .ci/install-cases.sh.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const addon = join(root, 'build', 'Release', 'batchnorm.node');
const prebuildDir = `prebuilds/${process.platform}-${process.arch}`;
const PREBUILD = `${prebuildDir}/batchnorm.napi.glibc.node`;

function cleanEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('BATCHNORM_') || k.startsWith('npm_')) delete env[k];
  return { ...env, ...extra };
}

it('ships every file its README links to, its LICENSE, and what an install needs', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'check-pack.mjs')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  // The README's links, and those of the shipped pages it links to (docs/ among them).
  const checked = /README links checked in: (.*)/.exec(r.stdout)?.[1].split(', ') ?? [];
  for (const f of ['README.md', 'bench/results/RESULTS.md', 'docs/README.md', 'docs/backward.md', 'docs/precision.md']) expect(checked).toContain(f);
  expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} batchnorm contributors\n/);
  expect(pkg.license).toBe('MIT');
  for (const f of ['LICENSE', 'prebuilds/', 'scripts/install.mjs', 'dist/', 'native/', 'binding.gyp']) expect(pkg.files).toContain(f);
  expect(pkg.scripts.install).toBe('node scripts/install.mjs');
  expect(pkg.scripts.prepack).toBe('bash scripts/prebuild.sh');
}, 150_000);

it('states the Node versions where both import and require work', () => {
  expect(pkg.engines.node).toBe('^20.19.0 || >=22.12.0');
  expect(pkg.type).toBe('module');
});

it('loads from CommonJS: require (Node >= 20.19 / 22.12) and import()', () => {
  const script = `
    const viaRequire = require('batchnorm');
    const y = new viaRequire.BatchNorm1d(2).forward({ data: new Float32Array([1, 2, 3, 5]), shape: [2, 2] });
    import('batchnorm').then((viaImport) => {
      console.log(JSON.stringify({ same: viaImport.BatchNorm1d === viaRequire.BatchNorm1d, y0: y.data[0] }));
    });
  `;
  const r = spawnSync(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: root, encoding: 'utf8', env: cleanEnv({}), timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.same).toBe(true);
  expect(out.y0).toBeCloseTo(-1, 4);
}, 90_000);

// ------------------------------------------------------------ scripts/install.mjs

/** A scratch package: the install script, dist/, package.json, and what `files` says (prebuilt, broken, none). */
function scratch(prebuilt: 'valid' | 'broken' | 'none'): string {
  const dir = mkdtempSync(join(tmpdir(), 'bn-install-'));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(root, 'scripts', 'install.mjs'), join(dir, 'scripts', 'install.mjs'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  if (prebuilt !== 'none') {
    mkdirSync(join(dir, prebuildDir), { recursive: true });
    if (prebuilt === 'valid') copyFileSync(addon, join(dir, PREBUILD));
    else writeFileSync(join(dir, PREBUILD), 'not a shared object');
  }
  return dir;
}

/** A PATH with node only: no compiler, make or python. */
function bareBin(): string {
  const bin = mkdtempSync(join(tmpdir(), 'bn-bin-'));
  symlinkSync(process.execPath, join(bin, 'node'));
  return bin;
}

function install(dir: string, env: Record<string, string | undefined>) {
  return spawnSync(process.execPath, [join(dir, 'scripts', 'install.mjs')], { cwd: dir, encoding: 'utf8', env: cleanEnv(env), timeout: 60_000 });
}

function importIn(dir: string) {
  const script = `const bn = await import('./dist/index.js'); console.log(JSON.stringify(bn.backendInfo()));`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', env: cleanEnv({}), timeout: 60_000 });
}

it('install: uses a prebuilt addon that loads, without any build tool; the loader finds it', () => {
  const dir = scratch('valid');
  const r = install(dir, { PATH: bareBin() });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toContain(`batchnorm: using the prebuilt addon ${PREBUILD}`);
  expect(existsSync(join(dir, 'build'))).toBe(false);
  const run = importIn(dir);
  expect(run.status, run.stderr).toBe(0);
  expect(JSON.parse(run.stdout).backend).toBe('native');
  expect(run.stderr).toBe('');
}, 90_000);

it('install: no usable prebuilt addon and no compiler: one warning, exit 0, and the import says why', () => {
  for (const prebuilt of ['none', 'broken'] as const) {
    const dir = scratch(prebuilt);
    const r = install(dir, { PATH: bareBin() });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('batchnorm: WARNING: the native addon is not installed:');
    expect(r.stderr).toContain('no build from source: a C++17 compiler (g++), make, python3 not found on the PATH');
    expect(r.stderr).toContain('npm rebuild batchnorm --build-from-source');
    expect(r.stderr).toContain('--nodedir=/usr');
    expect(r.stderr.match(/WARNING/g)).toHaveLength(1);
    if (prebuilt === 'broken') expect(r.stderr).toContain(`the prebuilt addon does not load (`);
    else expect(r.stdout).toContain(`no prebuilt addon for ${process.platform}-${process.arch}`);
    const note = readFileSync(join(dir, 'build', 'install-warning.txt'), 'utf8');
    expect(note).toContain('no build from source');
    const run = importIn(dir);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).backend).not.toBe('native');
    expect(run.stderr).toContain('BATCHNORM_FALLBACK');
    expect(run.stderr).toContain(`(at install: ${note.trim()})`);
  }
}, 120_000);

it('install: --build-from-source skips the prebuilt addon, and a build that cannot run fails the install', () => {
  const dir = scratch('valid');
  const r = install(dir, { PATH: bareBin(), npm_config_build_from_source: 'true' });
  expect(r.status).toBe(1);
  expect(r.stderr).toContain('batchnorm: --build-from-source: no build from source: a C++17 compiler (g++), make, python3 not found on the PATH');
  expect(r.stdout).not.toContain('using the prebuilt addon');
}, 90_000);

it('install: a compiler named by $CXX that is missing is named in the warning', () => {
  const dir = scratch('none');
  const r = install(dir, { PATH: bareBin(), CXX: 'clang++-99 -std=c++17' });
  expect(r.status).toBe(0);
  expect(r.stderr).toContain('a C++17 compiler (clang++-99, from $CXX)');
}, 90_000);
