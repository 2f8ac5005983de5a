/**
 * Every code block of the README works as written.
 *
 * The ```ts blocks are type-checked under the project's strict options, then
 * each runs as its own ES module in a child process, the way a user runs it:
 * from a fresh directory where `batchnorm` is installed (node_modules/batchnorm
 * links to this package, so `import ... from 'batchnorm'` resolves through the
 * package's `exports` to dist/, which npm test builds first). That directory
 * holds only the file the README names: `model.safetensors`, a copy of the
 * sample test/fixtures/model.safetensors (saved from PyTorch by
 * test/fixtures/generate.py).
 *
 * The ```sh blocks install, test and run the package; they are not run here
 * (npm test would run itself), but each `npm run X` in them must be a script
 * of package.json, and no other kind of block may appear unchecked.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { codeBlocks, root, runModule, sandbox, typeCheck } from './code-blocks.js';

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const blocks = codeBlocks(readme);
const tsBlocks = blocks.filter((b) => b.lang === 'ts');

// Type-checking builds a program over the package's declarations, and each
// block is a Node process: seconds on a quiet machine, several times that on a
// busy one.
const TYPECHECK_MS = 120_000;
const RUN_MS = 120_000;

const box = sandbox('batchnorm-readme-');
const dir = box.dir;
copyFileSync(join(root, 'test', 'fixtures', 'model.safetensors'), join(dir, 'model.safetensors'));
const files = tsBlocks.map((b) => {
  const file = join(dir, `readme-line-${b.line}.ts`);
  writeFileSync(file, b.code);
  return file;
});
afterAll(() => box.remove());

it('has only ts and sh code blocks, and some of each', () => {
  expect(blocks.filter((b) => b.lang !== 'ts' && b.lang !== 'sh').map((b) => `line ${b.line}: \`\`\`${b.lang}`)).toEqual([]);
  expect(tsBlocks.length).toBeGreaterThan(0);
  expect(blocks.some((b) => b.lang === 'sh')).toBe(true);
});

it('shows only npm scripts that package.json has', () => {
  const scripts = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts);
  const shown = blocks.filter((b) => b.lang === 'sh').flatMap((b) => [...b.code.matchAll(/\bnpm run ([\w:-]+)/g)].map((m) => m[1]));
  expect(shown.length).toBeGreaterThan(0);
  expect(shown.filter((s) => !scripts.includes(s))).toEqual([]);
});

it(
  'type-checks every ts block under the strict options of tsconfig.json',
  () => {
    expect(typeCheck(files, dir)).toBe('');
  },
  TYPECHECK_MS,
);

describe.each(tsBlocks.map((b, i) => [b.line, files[i]] as const))('the ts block at README.md line %i', (_line, file) => {
  it(
    'runs',
    () => {
      const r = runModule(file, dir, RUN_MS - 10_000);
      expect(r.error, 'the child could not run or timed out').toBeUndefined();
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    },
    RUN_MS,
  );
});
