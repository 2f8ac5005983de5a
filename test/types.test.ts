/** Issue 19 item 10 (typing): under the project's strict options, an affine module's weight needs no `!`. */
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';

it("test/types/affine.ts type-checks under tsconfig.json's strict options", () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const config = ts.readConfigFile(`${root}/tsconfig.json`, ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const program = ts.createProgram([`${root}/test/types/affine.ts`], { ...options, noEmit: true, rootDir: root });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  expect(options.strict).toBe(true);
  expect(diagnostics).toEqual([]);
}, 120_000);
