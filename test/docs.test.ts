/**
 * Every code block of docs/ works as written (test/code-blocks.ts runs them as
 * a user would). ```ts blocks are type-checked and run, and their assertions
 * are the docs' claims: the wrong "custom backward" must FAIL its gradient
 * check and the right ones pass, the float32 one-pass variance must be wrong
 * and the package's right. ```text blocks are formulas and printed output;
 * an output block that follows a ts block must be what that block prints.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { codeBlocks, root, runModule, sandbox, typeCheck } from './code-blocks.js';

// Type-checking builds a program over the package's declarations, and each
// block is a Node process (precision.md's loops over 2²² values): seconds on a
// quiet machine, several times that on a busy one.
const TYPECHECK_MS = 120_000;
const RUN_MS = 120_000;

const docsDir = join(root, 'docs');
// docs/data-parallel.md (SyncBatchNorm, issue 22) is checked by test/sync/adapter.test.ts: its js
// block is examples/port-collective.mjs verbatim, run there; its ts blocks are fragments (a worker's
// lines, an interface) that do not run alone.
const ELSEWHERE = ['data-parallel.md'];
const pages = readdirSync(docsDir)
  .filter((f) => f.endsWith('.md') && !ELSEWHERE.includes(f))
  .sort();
const box = sandbox('batchnorm-docs-');
afterAll(() => box.remove());

// A ts block's printed output is the text block right after it, when the prose
// between the two ends in "prints:".
const blocks = pages.flatMap((page) => {
  const text = readFileSync(join(docsDir, page), 'utf8');
  const own = codeBlocks(text);
  return own.map((b, i) => {
    const next = own[i + 1];
    const output = next?.lang === 'text' && /prints:\s*$/.test(text.slice(b.end, next.start)) ? next.code : undefined;
    return { ...b, page, output };
  });
});
const tsBlocks = blocks
  .filter((b) => b.lang === 'ts')
  .map((b) => {
    const file = join(box.dir, `${b.page.replace(/\.md$/, '')}-line-${b.line}.ts`);
    writeFileSync(file, b.code);
    return { ...b, file };
  });

it('has pages, ts blocks in them (some with their output), and only ts, text and sh blocks', () => {
  expect(tsBlocks.filter((b) => b.output !== undefined).length).toBeGreaterThanOrEqual(2);
  expect(pages).toContain('README.md');
  expect(tsBlocks.length).toBeGreaterThanOrEqual(5);
  expect(blocks.filter((b) => !['ts', 'text', 'sh'].includes(b.lang)).map((b) => `${b.page} line ${b.line}: \`\`\`${b.lang}`)).toEqual([]);
});

it('every page is linked from docs/README.md, and docs/ from the README', () => {
  const index = readFileSync(join(docsDir, 'README.md'), 'utf8');
  expect([...pages, ...ELSEWHERE].filter((p) => p !== 'README.md' && !index.includes(`](${p})`))).toEqual([]);
  expect(readFileSync(join(root, 'README.md'), 'utf8')).toMatch(/\]\(docs\/(README\.md)?\)/);
});

it(
  'type-checks every ts block under the strict options of tsconfig.json',
  () => {
    expect(
      typeCheck(
        tsBlocks.map((b) => b.file),
        box.dir,
      ),
    ).toBe('');
  },
  TYPECHECK_MS,
);

describe.each(tsBlocks.map((b) => [`${b.page} line ${b.line}`, b] as const))('the ts block of %s', (_name, b) => {
  it(
    'runs, and prints what the page says it prints',
    () => {
      const r = runModule(b.file, box.dir, RUN_MS - 10_000);
      expect(r.error, 'the child could not run or timed out').toBeUndefined();
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      if (b.output !== undefined) expect(r.stdout).toBe(b.output);
    },
    RUN_MS,
  );
});
