/**
 * Packaging: `batchnorm` imports without TF.js installed (it is an optional
 * peer), and `batchnorm/tfjs` is its own entry, with types. Runs the built
 * package (dist/, as `npm test` builds it) in child processes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const node = (cwd: string, code: string) => spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd, encoding: 'utf8', timeout: 60_000 });

describe('the batchnorm/tfjs entry', { timeout: 120_000 }, () => {
  // The package without node_modules: no TF.js anywhere up the tree (tmpdir).
  const bare = mkdtempSync(join(tmpdir(), 'batchnorm-bare-'));
  afterAll(() => rmSync(bare, { recursive: true, force: true }));
  cpSync(join(root, 'package.json'), join(bare, 'package.json'));
  cpSync(join(root, 'dist'), join(bare, 'dist'), { recursive: true });
  if (existsSync(join(root, 'build'))) symlinkSync(join(root, 'build'), join(bare, 'build'));

  it("imports 'batchnorm' without TF.js installed", () => {
    const r = node(
      bare,
      "const m = await import('./dist/index.js'); const y = m.batchNorm({ data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] }, null, null, { training: true }); console.log(Array.from(y.data).join(','));",
    );
    expect(r.stderr).not.toMatch(/tensorflow/i);
    expect(r.status).toBe(0);
    // Channels [1, 3] and [2, 4]: mean 2 and 3, variance 1, y = ±1/√(1 + 1e-5).
    const y = r.stdout.trim().split(',').map(Number),
      a = 1 / Math.sqrt(1 + 1e-5);
    [-a, -a, a, a].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 6));
  });

  it("without TF.js, 'batchnorm/tfjs' fails naming the missing peer", () => {
    const r = node(bare, "await import('./dist/tfjs/index.js');");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Cannot find package '@tensorflow\/tfjs-(core|layers)'/);
  });

  it("'batchnorm/tfjs' resolves through the package's exports, with types", () => {
    expect(pkg.exports['./tfjs']).toEqual({ types: './dist/tfjs/index.d.ts', default: './dist/tfjs/index.js' });
    expect(existsSync(join(root, 'dist', 'tfjs', 'index.d.ts'))).toBe(true);
    for (const peer of ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers']) {
      expect(pkg.peerDependencies[peer]).toMatch(/4\.22/);
      expect(pkg.peerDependenciesMeta[peer]).toEqual({ optional: true });
      expect(pkg.dependencies?.[peer]).toBeUndefined();
    }
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import '@tensorflow/tfjs-backend-cpu'; const m = await import('batchnorm/tfjs'); console.log(Object.keys(m).sort().join(','))",
      ],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    expect(out.trim()).toBe(
      'BatchNormTraining,BatchNormTrainingGrad,BatchNormalization,LayerNormRows,LayerNormRowsGrad,LayerNormalization,batchNormalization,installTfjsKernels,layerNormalization',
    );
  });
});
