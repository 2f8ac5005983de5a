/**
 * Finds the compiled addon and chooses the backend, once per process.
 *
 * - Unset `BATCHNORM_BACKEND`: the addon if it loads, else the WebAssembly
 *   kernels (`wasm/batchnorm.wasm`, one thread) if this engine runs them, else
 *   the pure-JS path; a fallback gives one warning saying why and how to get
 *   the native path. `BATCHNORM_BACKEND=native|wasm|js` forces one (an error
 *   if it cannot load).
 * - The addon is looked up in the prebuildify / node-gyp-build layout: a local
 *   build first (build/Release, build/Debug: `npm rebuild`, `--build-from-source`,
 *   a source checkout), then the prebuilt binary shipped for this platform
 *   (prebuilds/<platform>-<arch>/batchnorm.napi.glibc.node). The first that
 *   loads wins. The prebuilt one is found without the install script (npm may
 *   be told not to run scripts).
 * - `BATCHNORM_ADDON` names another addon file, `BATCHNORM_WASM` another
 *   WebAssembly module (tests, custom builds).
 * - `BATCHNORM_ISA` (read by the addon) forces its instruction set.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendInfo, Kernels } from './kernels.js';
import { jsKernels } from './js.js';
import { nativeKernels, type Addon } from './native.js';
import { loadWasm } from './wasm.js';
import { describe } from './validate.js';

/** The package root: this file is lib/backend/loader.ts or dist/backend/loader.js. */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);

export const version: string = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** The prebuilt addon's name in prebuilds/<platform>-<arch>/ (scripts/prebuild.sh; Node-API, glibc: the tags node-gyp-build reads). */
const PREBUILD_NAME = 'batchnorm.napi.glibc.node';

function addonPaths(): string[] {
  const custom = process.env.BATCHNORM_ADDON;
  if (custom) return [custom];
  return [
    ...['Release', 'Debug'].map((d) => join(root, 'build', d, 'batchnorm.node')),
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, PREBUILD_NAME),
  ];
}

const HOW_TO_BUILD =
  "build it with `npm rebuild batchnorm --build-from-source` (needs python3, make, a C++17 compiler and Node's headers: add --nodedir=/usr if they are in /usr/include/node), or set BATCHNORM_BACKEND=js to choose the pure-JS path";
// The addon refuses to load with a message that starts "BATCHNORM_ISA=" (dispatch.cc) when the forced ISA cannot run: rebuilding would not help.
const HOW_TO_CHOOSE_ISA = 'unset BATCHNORM_ISA, or set it to an ISA this build and CPU can run (named above)';

/** Why the install did not build the addon (scripts/install.mjs writes it), to say so at run time too: npm hides install output. */
function installNote(): string {
  if (process.env.BATCHNORM_ADDON) return '';
  try {
    return ` (at install: ${readFileSync(join(root, 'build', 'install-warning.txt'), 'utf8').trim()})`;
  } catch {
    return '';
  }
}

function loadAddon(): { addon: Addon | null; why: string; fix: string } {
  const paths = addonPaths();
  const found = paths.filter((p) => existsSync(p));
  if (found.length === 0) return { addon: null, why: `no compiled addon at ${paths.join(' or ')}${installNote()}`, fix: HOW_TO_BUILD };
  const failures: string[] = [];
  for (const p of found) {
    try {
      return { addon: require(p) as Addon, why: '', fix: '' };
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
  const why = found.map((p, i) => `${p} failed to load: ${failures[i]}`).join('; ') + installNote();
  return { addon: null, why, fix: failures.every((m) => m.startsWith('BATCHNORM_ISA=')) ? HOW_TO_CHOOSE_ISA : HOW_TO_BUILD };
}

type Backend = BackendInfo['backend'];

const HOW_TO_BUILD_WASM = 'build it with `npm run build:wasm` (needs clang-19 and lld-19), or run on an engine with WebAssembly SIMD';

function choose(): { kernels: Kernels; addon: Addon | null; backend: Backend } {
  const wanted = process.env.BATCHNORM_BACKEND ?? '';
  if (wanted !== '' && wanted !== 'native' && wanted !== 'wasm' && wanted !== 'js')
    throw new Error(`Expected BATCHNORM_BACKEND to be "native", "wasm" or "js" (or unset) but received "${wanted}"`);
  if (wanted === 'js') return { kernels: jsKernels, addon: null, backend: 'js' };
  let why = '',
    fix = '';
  if (wanted !== 'wasm') {
    const a = loadAddon();
    if (a.addon) return { kernels: nativeKernels(a.addon), addon: a.addon, backend: 'native' };
    if (wanted === 'native') throw new Error(`BATCHNORM_BACKEND=native, but the native addon is unavailable: ${a.why}. To fix, ${a.fix}.`);
    ({ why, fix } = a);
  }
  // The WebAssembly tier: the same kernels on one thread.
  const wasm = loadWasm(process.env.BATCHNORM_WASM || join(root, 'wasm', 'batchnorm.wasm'));
  if (wasm.kernels) {
    if (wanted !== 'wasm')
      process.emitWarning(`batchnorm: using the WebAssembly path (one thread, slower than native) because ${why}. To use the native path, ${fix}.`, {
        code: 'BATCHNORM_FALLBACK',
      });
    return { kernels: wasm.kernels, addon: null, backend: 'wasm' };
  }
  if (wanted === 'wasm') throw new Error(`BATCHNORM_BACKEND=wasm, but the WebAssembly kernels are unavailable: ${wasm.why}. To fix, ${HOW_TO_BUILD_WASM}.`);
  process.emitWarning(`batchnorm: using the pure-JS path, which is much slower, because ${why}, and ${wasm.why}. To use the native path, ${fix}.`, {
    code: 'BATCHNORM_FALLBACK',
  });
  return { kernels: jsKernels, addon: null, backend: 'js' };
}

const chosen = choose();

/** The kernels every public function calls. */
export const kernels: Kernels = chosen.kernels;
/** The addon, when the native path runs (for kernels outside the Kernels interface: backend/split.ts). */
export const addon: Addon | null = chosen.addon;

/** Which implementation runs: `{ backend, isa, threads, version }`. */
export function backendInfo(): BackendInfo {
  if (chosen.backend === 'wasm') return { backend: 'wasm', isa: 'simd128', threads: 1, version };
  if (!chosen.addon) return { backend: 'js', isa: 'js', threads: 1, version };
  const info = chosen.addon.info();
  return { backend: 'native', isa: info.isa, threads: info.threads, version };
}

/** The instruction sets this build and CPU can run, best last (`BATCHNORM_ISA` picks one); `['simd128']` on the WebAssembly path, `['js']` on the JS path. */
export function capabilities(): string[] {
  if (chosen.backend === 'wasm') return ['simd128'];
  return chosen.addon ? chosen.addon.info().capabilities : ['js'];
}

/**
 * Threads a native call may use (default: the cores available). The setting is
 * process-wide, like `torch.set_num_threads`. Results are bitwise the same for
 * any thread count. The WebAssembly and JS paths always run on one thread.
 */
export function setNumThreads(n: number): void {
  if (chosen.addon) return chosen.addon.setNumThreads(n);
  // The same words as the native binding's.
  if (typeof n !== 'number') throw new TypeError(`Expected a positive integer for n but received ${describe(n)}`);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected a positive integer for n but received ${describe(n)}`);
  if (n > 1024) throw new RangeError(`Expected a positive integer of at most 1024 for n but received ${describe(n)}`);
}

export function getNumThreads(): number {
  return chosen.addon ? chosen.addon.getNumThreads() : 1;
}
