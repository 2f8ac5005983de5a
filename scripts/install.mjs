#!/usr/bin/env node
/**
 * npm's install script ("install" in package.json). An install never fails
 * because the addon could not be built; in order:
 *   1. the prebuilt addon for this platform (prebuilds/<platform>-<arch>/
 *      batchnorm.napi.glibc.node, made by scripts/prebuild.sh at `npm pack`),
 *      if it loads here: checked in a child process, since a glibc binary on
 *      musl or on an older glibc does not;
 *   2. else a build from source with node-gyp, when a compiler, make and
 *      python are on the PATH;
 *   3. else one warning (why, and how to get the native path) and exit 0: the
 *      package runs on its next backend (lib/backend/loader.ts). The warning
 *      also goes to build/install-warning.txt, which the loader quotes in its
 *      own fallback warning: npm shows an install script's output only with
 *      --foreground-scripts or when the script fails.
 * `npm install --build-from-source` (npm_config_build_from_source=true, or
 * =batchnorm) skips 1, and a build that fails then fails the install: the
 * build was asked for. A source checkout (a .git here) always builds: any
 * prebuilds/ in it may be older than the sources.
 * Node's headers: npm's nodedir when set (node-gyp reads it from the
 * environment), else the ones next to this node (<prefix>/include/node: the
 * official binaries, Debian's /usr), else node-gyp's cache or its download.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const PREBUILD = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'batchnorm.napi.glibc.node');
const BUILT = join(root, 'build', 'Release', 'batchnorm.node');
const NOTE = join(root, 'build', 'install-warning.txt');
const BUILD_TIMEOUT_MS = 20 * 60_000; // a hung header download must not hang the install for ever
const HOW_TO_GET_NATIVE =
  'install python3, make and a C++17 compiler (Debian/Ubuntu: apt-get install python3 make g++), then run ' +
  '`npm rebuild batchnorm --build-from-source`; node-gyp compiles against Node\'s headers and downloads them ' +
  'unless told where local ones are: add --nodedir=/usr when they are in /usr/include/node';

const log = (m) => console.log(`batchnorm: ${m}`);

const forced = ['true', '1', 'batchnorm'].includes((env.npm_config_build_from_source ?? '').toLowerCase());
const checkout = existsSync(join(root, '.git'));

/** '' when `file` loads in a fresh node (BATCHNORM_ISA unset: the addon reads it at load), else why not. */
function loadError(file) {
  const childEnv = { ...env };
  delete childEnv.BATCHNORM_ISA;
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)})`], { env: childEnv, encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return '';
  const line = (r.stderr ?? '').split('\n').find((l) => /^\w*Error\b/.test(l));
  return line ?? `node exited with ${r.error?.message ?? r.status ?? r.signal}`;
}

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
const onPath = (cmd) => (cmd.includes('/') ? executable(cmd) : (env.PATH ?? '').split(delimiter).some((d) => d && executable(join(d, cmd))));
const firstWord = (s) => s.trim().split(/\s+/)[0];

/** The build tools node-gyp needs on Linux and macOS that are missing (make's default compiler is g++). */
function missingTools() {
  if (process.platform === 'win32') return []; // node-gyp finds Visual Studio itself
  const missing = [];
  const cxx = firstWord(env.CXX || 'g++');
  if (!onPath(cxx)) missing.push(`a C++17 compiler (${cxx}${env.CXX ? ', from $CXX' : ''})`);
  const make = firstWord(env.MAKE || 'make');
  if (!onPath(make)) missing.push(make);
  if (!env.npm_config_python && !env.PYTHON && !onPath('python3') && !onPath('python')) missing.push('python3');
  return missing;
}

/** node-gyp: npm's own (npm_config_node_gyp, set for scripts), else one on the PATH. */
function nodeGyp() {
  const js = env.npm_config_node_gyp;
  if (js && existsSync(js)) return [process.execPath, js];
  return onPath('node-gyp') ? ['node-gyp'] : null;
}

/** --nodedir of the headers next to this node, unless npm's nodedir is set. */
function nodedirArgs() {
  if (env.npm_config_nodedir) return [];
  const prefix = join(dirname(process.execPath), '..');
  const headers = join(prefix, 'include', 'node');
  return existsSync(join(headers, 'node_api.h')) && existsSync(join(headers, 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

/** Builds build/Release/batchnorm.node; '' on success, else why not. */
function build() {
  const missing = missingTools();
  if (missing.length) return `no build from source: ${missing.join(', ')} not found on the PATH`;
  const gyp = nodeGyp();
  if (!gyp) return 'no build from source: node-gyp not found (npm brings its own: run the install with npm)';
  const args = [...gyp.slice(1), 'rebuild', ...nodedirArgs(), ...(env.npm_config_jobs ? [] : ['--jobs=max'])];
  log(`building the addon from source: ${[gyp[0] === process.execPath ? 'node' : gyp[0], ...args].join(' ')}`);
  const r = spawnSync(gyp[0], args, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20, timeout: BUILD_TIMEOUT_MS });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) {
    process.stderr.write(output.split('\n').slice(-30).join('\n') + '\n');
    const why = r.error ? r.error.message : `exit status ${r.status ?? r.signal}`;
    // The first line that says what went wrong: gyp's own (a missing header folder), a compiler's, else node-gyp's.
    const lines = output.split('\n');
    const gypError = [/^gyp: /, /\berror:/, /^gyp ERR! stack \w*Error/].map((re) => lines.find((l) => re.test(l))).find(Boolean);
    return `the build from source failed (node-gyp: ${why}${gypError ? `; ${gypError.trim()}` : ''})`;
  }
  const err = loadError(BUILT);
  return err && `the addon built from source does not load: ${err}`;
}

function warn(why) {
  console.warn(`batchnorm: WARNING: the native addon is not installed: ${why}.`);
  console.warn('batchnorm: the package works without it, on its slower fallback backend (backendInfo() says which).');
  console.warn(`batchnorm: to get the native path, ${HOW_TO_GET_NATIVE}.`);
  try {
    mkdirSync(dirname(NOTE), { recursive: true });
    writeFileSync(NOTE, `${why}\n`);
  } catch {
    // a read-only install directory: the warning above is all there is
  }
}

function main() {
  rmSync(NOTE, { force: true });
  let prebuiltError = '';
  if (!forced && !checkout) {
    if (existsSync(PREBUILD)) {
      prebuiltError = loadError(PREBUILD);
      if (!prebuiltError) return log(`using the prebuilt addon ${PREBUILD.slice(root.length + 1)}`);
      log(`the prebuilt addon ${PREBUILD.slice(root.length + 1)} does not load here (${prebuiltError}): trying a build from source`);
    } else {
      log(`no prebuilt addon for ${process.platform}-${process.arch}: trying a build from source`);
    }
  }
  const why = build();
  if (!why) return log(`built ${BUILT.slice(root.length + 1)}`);
  if (forced) {
    console.error(`batchnorm: --build-from-source: ${why}. To fix, ${HOW_TO_GET_NATIVE}; or install without --build-from-source.`);
    process.exitCode = 1;
    return;
  }
  warn(prebuiltError ? `the prebuilt addon does not load (${prebuiltError}) and ${why}` : why);
}

main();
