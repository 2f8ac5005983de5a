/**
 * Code blocks of Markdown pages, run the way a user runs them: extracted,
 * type-checked under the project's strict options, and each executed as its
 * own ES module in a child process, from a fresh directory where `batchnorm`
 * is installed (node_modules/batchnorm links to this package, so imports
 * resolve through the package's `exports` to dist/, which npm test builds
 * first). The approach of test/readme.test.ts, shared with test/docs.test.ts.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const root = fileURLToPath(new URL('..', import.meta.url));

export interface CodeBlock {
  lang: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** Offsets of the opening fence and just past the closing one. */
  start: number;
  end: number;
}

export function codeBlocks(markdown: string): CodeBlock[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1],
    code: m[2],
    line: markdown.slice(0, m.index).split('\n').length,
    start: m.index,
    end: m.index + m[0].length,
  }));
}

/** A directory where `import ... from 'batchnorm'` resolves to this package; `remove()` when done. */
export function sandbox(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'batchnorm'), 'dir');
  // batchnorm/tfjs' optional peers (TF.js), installed beside it as a user would.
  if (existsSync(join(root, 'node_modules', '@tensorflow')))
    symlinkSync(join(root, 'node_modules', '@tensorflow'), join(dir, 'node_modules', '@tensorflow'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: prefix.replace(/\W+$/, ''), type: 'module', private: true }));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The diagnostics of type-checking `files` (in `dir`) under tsconfig.json's options; '' when clean. */
export function typeCheck(files: string[], dir: string): string {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const program = ts.createProgram(files, {
    ...options,
    noEmit: true,
    rootDir: dir,
    outDir: undefined,
    declaration: false,
    typeRoots: [join(root, 'node_modules', '@types')],
  });
  const host: ts.FormatDiagnosticsHost = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => dir, getNewLine: () => '\n' };
  return ts.formatDiagnostics(ts.getPreEmitDiagnostics(program), host);
}

/** Transpiles the .ts file to a .mjs beside it and runs it with this Node, in `dir`. */
export function runModule(file: string, dir: string, timeoutMs: number): SpawnSyncReturns<string> {
  const js = ts.transpileModule(readFileSync(file, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const mjs = file.replace(/\.ts$/, '.mjs');
  writeFileSync(mjs, js);
  return spawnSync(process.execPath, [mjs], { cwd: dir, env: process.env, encoding: 'utf8', timeout: timeoutMs });
}
