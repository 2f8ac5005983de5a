// benchmark.js ships no types, and the bench uses four of its members: this
// declares them instead of pulling in @types/benchmark.
declare module 'benchmark' {
  interface Options {
    minSamples?: number;
    maxTime?: number;
    minTime?: number;
    initCount?: number;
    delay?: number;
  }
  class Benchmark {
    constructor(name: string, fn: () => unknown, options?: Options);
    static support: { decompilation: boolean };
    /** Calls per sample of the last run. */
    count: number;
    error?: Error;
    /** `sample`: seconds per call, one entry per sample; `rme`: relative margin of error, %. */
    stats: { sample: number[]; rme: number };
    run(): this;
  }
  export default Benchmark;
}
