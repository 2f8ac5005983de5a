// This machine's copy bandwidth, the yardstick of the "% of copy" column:
// `Float32Array.prototype.set` of a 128 MiB buffer into another (256 MiB in
// all, 8x the 32 MB L3, so it runs from DRAM), on one thread and split across
// worker_threads over a SharedArrayBuffer. GB/s counts read + write bytes
// (2 x bytes copied / time), the convention of the ops' 8 bytes per element.
//
//   node bench/lib/copybw.mjs [threads...]     # stand-alone: prints JSON
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { median } from './common.mjs';

const WORKER = `
const { workerData } = require('node:worker_threads');
const { ctl: ctlBuf, src: srcBuf, dst: dstBuf, begin, end } = workerData;
const ctl = new Int32Array(ctlBuf);
const src = new Float32Array(srcBuf, begin * 4, end - begin);
const dst = new Float32Array(dstBuf, begin * 4, end - begin);
let gen = 0;
for (;;) {
  Atomics.wait(ctl, 0, gen);
  gen = Atomics.load(ctl, 0);
  if (gen < 0) break;
  dst.set(src);
  Atomics.add(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}
`;

/**
 * Median GB/s over `reps` copies (after one warm-up) on `threads` threads.
 * threads = 1: the calling thread copies; > 1: that many workers copy one slice each.
 */
export async function copyBandwidth({ threads = 1, bytes = 128 << 20, reps = 15 } = {}) {
  const n = bytes / 4;
  const src = new Float32Array(new SharedArrayBuffer(bytes));
  const dst = new Float32Array(new SharedArrayBuffer(bytes));
  for (let i = 0; i < n; i += 1024) src[i] = i; // fault the pages in
  dst.fill(1);
  const ms = [];
  if (threads === 1) {
    for (let r = 0; r <= reps; r++) {
      const t0 = process.hrtime.bigint();
      dst.set(src);
      const t = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r > 0) ms.push(t);
    }
  } else {
    const ctl = new Int32Array(new SharedArrayBuffer(8));
    const workers = [];
    const ready = [];
    for (let w = 0; w < threads; w++) {
      const begin = Math.floor((n * w) / threads / 16) * 16;
      const end = w === threads - 1 ? n : Math.floor((n * (w + 1)) / threads / 16) * 16;
      const wk = new Worker(WORKER, { eval: true, workerData: { ctl: ctl.buffer, src: src.buffer, dst: dst.buffer, begin, end } });
      ready.push(new Promise((res) => wk.once('online', res)));
      workers.push(wk);
    }
    await Promise.all(ready);
    await new Promise((res) => setTimeout(res, 50)); // let them reach Atomics.wait
    for (let r = 0; r <= reps; r++) {
      Atomics.store(ctl, 1, 0);
      const t0 = process.hrtime.bigint();
      Atomics.add(ctl, 0, 1);
      Atomics.notify(ctl, 0);
      for (let done; (done = Atomics.load(ctl, 1)) < threads;) Atomics.wait(ctl, 1, done, 1000);
      const t = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r > 0) ms.push(t);
    }
    Atomics.store(ctl, 0, -1);
    Atomics.notify(ctl, 0);
    await Promise.all(workers.map((w) => new Promise((res) => w.once('exit', res))));
  }
  const gbps = (/** @type {number} */ t) => (2 * bytes) / 1e9 / (t / 1e3);
  return { threads, bytesCopied: bytes, reps, medianMs: median(ms), gbps: gbps(median(ms)), bestGbps: gbps(Math.min(...ms)) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const ts = process.argv.slice(2).map(Number);
  for (const t of ts.length ? ts : [1, os.availableParallelism()]) console.log(JSON.stringify(await copyBandwidth({ threads: t })));
}
