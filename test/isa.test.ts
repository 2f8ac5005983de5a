/**
 * Every instruction set this CPU runs, forced with BATCHNORM_ISA in a child
 * process, gives the float64 reference's numbers; an ISA the CPU or build
 * lacks is a clear error; backendInfo()/capabilities() say what runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { backendInfo, capabilities } from '../lib/index.js';
import { randn, refBackward, refMoments, refNormalize, relError } from './helpers.js';

const cases = [[3, 5, 37, false], [16, 24, 3136, false], [64, 40, 1, true], [4, 33, 49, true], [2, 1, 70000, false]] as const;

/** The child runs the compiled package (dist/) with the ISA forced and prints its outputs. */
const script = `
  const { kernels } = await import('./dist/backend/loader.js');
  const { backendInfo } = await import('./dist/index.js');
  const { readFileSync } = await import('node:fs');
  const [cases, inputs] = JSON.parse(readFileSync(0, 'utf8'));
  const out = cases.map(([n, c, s, cl], k) => {
    const numel = n * c * s;
    const f32 = (b64) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
    const x = f32(inputs[k][0]), dy = f32(inputs[k][1]);
    const y = new Float32Array(numel), sm = new Float32Array(c), si = new Float32Array(c), dx = new Float32Array(numel), gw = new Float32Array(c), gb = new Float32Array(c);
    kernels.forwardTraining(x, y, null, null, null, null, sm, si, n, c, s, cl, 1e-5, 0.1);
    kernels.backward(x, dy, dx, null, sm, si, gw, gb, n, c, s, cl, true);
    return [y, sm, si, dx, gw, gb].map((a) => Buffer.from(a.buffer).toString('base64'));
  });
  process.stdout.write(JSON.stringify({ isa: backendInfo().isa, out }));
`;

const inputs = cases.map(([n, c, s], k) => [randn(n * c * s, 2 * k + 1, 2, 3), randn(n * c * s, 2 * k + 2)]);

function runWith(isa: string) {
  const arg = JSON.stringify([cases, inputs.map((p) => p.map((a) => Buffer.from(a.buffer).toString('base64')))]);
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    input: arg,
    cwd: new URL('..', import.meta.url), env: { ...process.env, BATCHNORM_ISA: isa, BATCHNORM_BACKEND: 'native' }, encoding: 'utf8', maxBuffer: 1 << 28,
  });
}

it('reports the best ISA by default and lists what runs', () => {
  const caps = capabilities();
  expect(caps[0]).toBe('scalar');
  expect(backendInfo()).toMatchObject({ backend: 'native', isa: caps[caps.length - 1], version: expect.any(String) });
  if (process.arch === 'x64') {
    const cpu = execFileSync('sh', ['-c', 'grep -m1 flags /proc/cpuinfo || true'], { encoding: 'utf8' });
    if (/\bavx2\b/.test(cpu) && /\bfma\b/.test(cpu)) expect(caps).toContain('avx2');
    if (/\bavx512f\b/.test(cpu) && /\bavx512bw\b/.test(cpu)) expect(caps).toContain('avx512');
  }
});

it.each(capabilities())('BATCHNORM_ISA=%s matches the float64 reference', (isa) => {
  const r = runWith(isa);
  expect(r.status, r.stderr).toBe(0);
  const { isa: ran, out } = JSON.parse(r.stdout);
  expect(ran).toBe(isa);
  const f32 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
  cases.forEach(([n, c, s, channelsLast], k) => {
    const d = { n, c, s, channelsLast }, [x, dy] = inputs[k];
    const [y, sm, si, dx, gw, gb] = out[k].map(f32);
    const { mean, variance } = refMoments(x, d);
    const ref = refBackward(x, dy, d, sm, si, null, true);
    const tag = `${isa} ${n}x${c}x${s}${channelsLast ? ' channels-last' : ''}`;
    expect(relError(sm, mean), `${tag} mean`).toBeLessThan(1e-6);
    expect(relError(y, refNormalize(x, d, mean, variance, 1e-5, null, null)), `${tag} y`).toBeLessThan(1e-5);
    expect(relError(gw, ref.gw), `${tag} gradWeight`).toBeLessThan(1e-5);
    expect(relError(gb, ref.gb), `${tag} gradBias`).toBeLessThan(1e-5);
    expect(relError(dx, ref.dx), `${tag} dx`).toBeLessThan(1e-4);
  });
});

it('BATCHNORM_ISA naming an ISA that cannot run is a clear error', () => {
  const other = process.arch === 'x64' ? 'neon' : 'avx2';
  const r = runWith(other);
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain(`BATCHNORM_ISA=${other} is not an ISA of this build; expected one of: ${capabilities().join(', ')}`);
});
