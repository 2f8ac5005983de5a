/**
 * Every instruction set this CPU runs, forced with BATCHNORM_ISA in a child
 * process, gives the float64 reference's numbers for every op, in float32 and
 * float64; an ISA the CPU or build lacks is a clear error; backendInfo() and
 * capabilities() say what runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { backendInfo, capabilities } from '../lib/index.js';
import { randn, refBackward, refMoments, refNormalize, relError } from './helpers.js';

// Tests here run Node child processes: seconds each on a quiet machine. Each
// test states its limit, generous enough for every core being busy with other
// work; a child is killed a little before, so that a hang fails with its output.
const TEST_MS = 180_000,
  CHILD_MS = 150_000;

const cases = [
  [3, 5, 37, false],
  [16, 24, 3136, false],
  [64, 40, 1, true],
  [4, 33, 49, true],
  [2, 1, 70000, false],
] as const;

/**
 * The child runs the compiled package (dist/) with the ISA forced: per case,
 * forward-training (weight, bias, running statistics), forward-eval, backward
 * with batch and with frozen statistics, in float32; then all four again in
 * float64. It prints every output.
 */
const script = `
  const { kernels } = await import('./dist/backend/loader.js');
  const { backendInfo } = await import('./dist/index.js');
  const { readFileSync } = await import('node:fs');
  const [cases, inputs] = JSON.parse(readFileSync(0, 'utf8'));
  const out = cases.map(([n, c, s, cl], k) => {
    const numel = n * c * s;
    const run = (T, [x, dy, w, b, rm0, rv0]) => {
      const y = new T(numel), sm = new T(c), si = new T(c), dx = new T(numel), gw = new T(c), gb = new T(c);
      const rm = rm0.slice(), rv = rv0.slice(), ye = new T(numel), dxf = new T(numel);
      kernels.forwardTraining(x, y, w, b, rm, rv, sm, si, n, c, s, cl, 1e-5, 0.1);
      kernels.backward(x, dy, dx, w, sm, si, gw, gb, n, c, s, cl, true);
      kernels.forwardEval(x, ye, w, b, rm0, rv0, n, c, s, cl, 1e-5);
      kernels.backward(x, dy, dxf, w, rm0, si, null, null, n, c, s, cl, false);
      return [y, sm, si, rm, rv, dx, gw, gb, ye, dxf];
    };
    const decode = (T) => inputs[k].map((b64) => T.from(new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer)));
    return [Float32Array, Float64Array].flatMap((T) => run(T, decode(T))).map((a) => Buffer.from(a.buffer).toString('base64'));
  });
  process.stdout.write(JSON.stringify({ isa: backendInfo().isa, out }));
`;

// Per case: x, dy, weight, bias, running mean, running variance (float32 values; the float64 run widens them).
const inputs = cases.map(([n, c, s], k) => [
  randn(n * c * s, 6 * k + 1, 2, 3),
  randn(n * c * s, 6 * k + 2),
  randn(c, 6 * k + 3, 1, 0.5),
  randn(c, 6 * k + 4),
  randn(c, 6 * k + 5, 2, 1),
  Float32Array.from(randn(c, 6 * k + 6), (v) => 1 + v * v),
]);

function runWith(isa: string) {
  const arg = JSON.stringify([cases, inputs.map((p) => p.map((a) => Buffer.from(a.buffer).toString('base64')))]);
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    input: arg,
    cwd: new URL('..', import.meta.url),
    env: { ...process.env, BATCHNORM_ISA: isa, BATCHNORM_BACKEND: 'native' },
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: CHILD_MS,
  });
}

it(
  'reports the best ISA by default and lists what runs',
  () => {
    const caps = capabilities();
    expect(caps[0]).toBe('scalar');
    expect(backendInfo()).toMatchObject({ backend: 'native', isa: caps[caps.length - 1], version: expect.any(String) });
    if (process.arch === 'x64') {
      const cpu = execFileSync('sh', ['-c', 'grep -m1 flags /proc/cpuinfo || true'], { encoding: 'utf8' });
      if (/\bavx2\b/.test(cpu) && /\bfma\b/.test(cpu)) expect(caps).toContain('avx2');
      if (/\bavx512f\b/.test(cpu) && /\bavx512bw\b/.test(cpu)) expect(caps).toContain('avx512');
    }
  },
  TEST_MS,
);

it.each(capabilities())(
  'BATCHNORM_ISA=%s matches the float64 reference, float32 and float64',
  (isa) => {
    const r = runWith(isa);
    expect(r.status, r.stderr).toBe(0);
    const { isa: ran, out } = JSON.parse(r.stdout);
    expect(ran).toBe(isa);
    cases.forEach(([n, c, s, channelsLast], k) => {
      const d = { n, c, s, channelsLast },
        [x, dy, w, b, rm0, rv0] = inputs[k],
        m = n * s;
      const { mean, variance } = refMoments(x, d);
      // float64 outputs must be 1e7 times closer to the float64 reference than float32 ones.
      for (const [dtype, T, tol, offset] of [
        ['float32', Float32Array, 1, 0],
        ['float64', Float64Array, 1e-7, 10],
      ] as const) {
        const [y, sm, si, rm, rv, dx, gw, gb, ye, dxf] = out[k]
          .slice(offset, offset + 10)
          .map((b64: string) => new T(new Uint8Array(Buffer.from(b64, 'base64')).buffer));
        const tag = `${isa} ${dtype} ${n}x${c}x${s}${channelsLast ? ' channels-last' : ''}`;
        const ref = refBackward(x, dy, d, sm, si, w, true),
          frozen = refBackward(x, dy, d, rm0, si, w, false);
        expect(relError(sm, mean), `${tag} mean`).toBeLessThan(1e-6 * tol);
        expect(
          relError(
            si,
            Array.from(variance, (v) => 1 / Math.sqrt(v + 1e-5)),
          ),
          `${tag} invstd`,
        ).toBeLessThan(1e-6 * tol);
        expect(
          relError(
            rm,
            Array.from(mean, (v, ch) => 0.9 * rm0[ch] + 0.1 * v),
          ),
          `${tag} running mean`,
        ).toBeLessThan(1e-6 * tol);
        expect(
          relError(
            rv,
            Array.from(variance, (v, ch) => 0.9 * rv0[ch] + (0.1 * v * m) / (m - 1)),
          ),
          `${tag} running var`,
        ).toBeLessThan(1e-6 * tol);
        expect(relError(y, refNormalize(x, d, mean, variance, 1e-5, w, b)), `${tag} y`).toBeLessThan(1e-5 * tol);
        expect(relError(gw, ref.gw), `${tag} gradWeight`).toBeLessThan(1e-5 * tol);
        expect(relError(gb, ref.gb), `${tag} gradBias`).toBeLessThan(1e-5 * tol);
        expect(relError(dx, ref.dx), `${tag} dx`).toBeLessThan(1e-4 * tol);
        expect(relError(ye, refNormalize(x, d, rm0, rv0, 1e-5, w, b)), `${tag} eval y`).toBeLessThan(1e-6 * tol);
        expect(relError(dxf, frozen.dx), `${tag} frozen dx`).toBeLessThan(1e-6 * tol);
      }
    });
  },
  TEST_MS,
);

it(
  'BATCHNORM_ISA naming an ISA that cannot run is a clear error',
  () => {
    const other = process.arch === 'x64' ? 'neon' : 'avx2';
    const r = runWith(other);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`BATCHNORM_ISA=${other} is not an ISA of this build; expected one of: ${capabilities().join(', ')}`);
  },
  TEST_MS,
);
