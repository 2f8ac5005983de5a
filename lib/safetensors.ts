/**
 * The safetensors format (what PyTorch's `safetensors.torch.save_file`
 * writes): an 8-byte little-endian header length, a JSON header
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }`,
 * then the raw little-endian tensor bytes. Parsed here directly, so that a
 * model trained in PyTorch drops in: `bn.loadStateDict(readSafetensors(bytes, { prefix: 'bn1.' }))`.
 */
import { checkOptions, fileError, invalidParameterError, rangeError, typeError } from './check.js';
import type { StateDict } from './batchnorm.js';

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Bytes per element by dtype; a Map, so that a dtype such as "toString" is not found on Object.prototype. */
const SIZES = new Map<unknown, number>([
  ['F64', 8],
  ['F32', 4],
  ['F16', 2],
  ['BF16', 2],
  ['I64', 8],
  ['I32', 4],
  ['I16', 2],
  ['I8', 1],
  ['U8', 1],
  ['BOOL', 1],
]);

const isNonNegativeInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * The shape a state-dict array carries: a non-enumerable `shape` property,
 * which modules' `stateDict()` and `readSafetensors` set (a LayerNorm([4, 5])
 * weight is [4, 5] in PyTorch's state dict, not [20]), or undefined.
 */
export function shapeOf(v: unknown): readonly number[] | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const shape = (v as { shape?: unknown }).shape;
  return Array.isArray(shape) && shape.every(isNonNegativeInteger) ? shape : undefined;
}

/** Gives `array` its PyTorch shape (non-enumerable: JSON, keys and equality see the array as before). Returns `array`. */
export function withShape<A extends object>(array: A, shape: readonly number[]): A {
  Object.defineProperty(array, 'shape', { value: Object.freeze([...shape]), enumerable: false, writable: true, configurable: true });
  return array;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/**
 * Reads the tensors of a safetensors file. Floating tensors come back as
 * Float32Array (F32, F16, BF16) or Float64Array (F64); integer scalars
 * (like num_batches_tracked) as numbers; other integer tensors as Float64Array.
 * Each array keeps the file's shape in a non-enumerable `shape` property, so
 * that `writeSafetensors(readSafetensors(bytes))` writes the same shapes.
 * `prefix` keeps only the keys that start with it, and strips it.
 */
export function readSafetensors(bytes: Uint8Array, options: { prefix?: string } = {}): StateDict {
  if (!(bytes instanceof Uint8Array)) throw typeError('bytes', 'a Uint8Array (or Buffer) of a safetensors file', bytes);
  checkOptions(options, 'readSafetensors', ['prefix']);
  const { prefix = '' } = options;
  if (typeof prefix !== 'string') throw typeError('prefix', 'a string', prefix);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) throw new RangeError(invalidParameterError('bytes', 'a safetensors file of at least 8 bytes', `${bytes.length} bytes`));
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > bytes.length - 8) throw fileError('the header length', `at most ${bytes.length - 8} bytes`, String(headerLength));
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (e) {
    throw fileError('the safetensors header', 'JSON', `text that does not parse (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw rangeError('the safetensors header', 'a JSON object', header);
  const base = 8 + headerLength;
  const out: StateDict = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__' || !name.startsWith(prefix)) continue;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fileError(name, 'an object { dtype, shape, data_offsets }', JSON.stringify(raw));
    const entry = raw as Entry;
    const size = SIZES.get(entry.dtype);
    if (size === undefined) throw fileError(name, `a dtype of ${[...SIZES.keys()].join(', ')}`, JSON.stringify(entry.dtype));
    if (!Array.isArray(entry.shape) || !entry.shape.every(isNonNegativeInteger))
      throw fileError(name, 'a shape of non-negative integers', String(JSON.stringify(entry.shape)));
    if (!Array.isArray(entry.data_offsets) || entry.data_offsets.length !== 2 || !entry.data_offsets.every(isNonNegativeInteger))
      throw fileError(name, 'data_offsets of two non-negative integers [begin, end]', String(JSON.stringify(entry.data_offsets)));
    const numel = entry.shape.reduce((a, b) => a * b, 1);
    const [begin, end] = entry.data_offsets;
    if (!(end - begin === numel * size && base + end <= bytes.length))
      throw fileError(name, `${numel * size} bytes inside the file`, `the offsets [${begin}, ${end}]`);
    const at = (i: number) => base + begin + i * size;
    let value: StateDict[string];
    switch (entry.dtype) {
      case 'F32':
        value = Float32Array.from({ length: numel }, (_, i) => view.getFloat32(at(i), true));
        break;
      case 'F64':
        value = Float64Array.from({ length: numel }, (_, i) => view.getFloat64(at(i), true));
        break;
      case 'F16':
        value = Float32Array.from({ length: numel }, (_, i) => halfToFloat(view.getUint16(at(i), true)));
        break;
      case 'BF16':
        value = Float32Array.from({ length: numel }, (_, i) => new Float32Array(new Uint32Array([view.getUint16(at(i), true) << 16]).buffer)[0]);
        break;
      case 'I64':
        value = Float64Array.from({ length: numel }, (_, i) => Number(view.getBigInt64(at(i), true)));
        break;
      case 'I32':
        value = Float64Array.from({ length: numel }, (_, i) => view.getInt32(at(i), true));
        break;
      case 'I16':
        value = Float64Array.from({ length: numel }, (_, i) => view.getInt16(at(i), true));
        break;
      case 'I8':
        value = Float64Array.from({ length: numel }, (_, i) => view.getInt8(at(i)));
        break;
      default:
        value = Float64Array.from({ length: numel }, (_, i) => view.getUint8(at(i))); // U8, BOOL
    }
    // defineProperty: a tensor named "__proto__" is a key like any other, not the result's prototype.
    Object.defineProperty(out, name.slice(prefix.length), {
      value:
        entry.shape.length === 0 && !entry.dtype.startsWith('F') && !entry.dtype.startsWith('BF') ? (value as Float64Array)[0] : withShape(value, entry.shape),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * Writes a state dict as a safetensors file (F32/F64 arrays, I64 scalars),
 * readable by PyTorch's `safetensors.torch.load_file`. Each array is written
 * with its PyTorch shape: `shapes[name]` when given, else the shape the array
 * carries (modules' `stateDict()` and `readSafetensors` set it: a
 * LayerNorm([4, 5]) weight is [4, 5]), else one-dimensional.
 */
export function writeSafetensors(stateDict: StateDict, options: { shapes?: Record<string, readonly number[]> } = {}): Uint8Array {
  if (typeof stateDict !== 'object' || stateDict === null || Array.isArray(stateDict)) throw typeError('the state dict', 'an object', stateDict);
  checkOptions(options, 'writeSafetensors', ['shapes']);
  const { shapes = {} } = options;
  if (typeof shapes !== 'object' || shapes === null || Array.isArray(shapes)) throw typeError('shapes', 'an object { name: shape }', shapes);
  const names = Object.keys(stateDict).sort();
  for (const name of Object.keys(shapes))
    if (!Object.prototype.hasOwnProperty.call(stateDict, name))
      throw new RangeError(invalidParameterError(`shapes.${name}`, 'the name of an array of the state dict', `a name the state dict does not have`));
  /** The shape to write for an array of `length` elements, checked against the length. */
  const shapeFor = (name: string, v: unknown, length: number): number[] => {
    const given = Object.prototype.hasOwnProperty.call(shapes, name) ? (shapes[name] as unknown) : undefined;
    if (given !== undefined && !(Array.isArray(given) && given.every(isNonNegativeInteger)))
      throw typeError(`shapes.${name}`, 'an array of non-negative integers', given);
    const shape = (given as readonly number[] | undefined) ?? shapeOf(v) ?? [length];
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel !== length)
      throw new RangeError(
        invalidParameterError(`the shape of ${name}`, `a shape of ${length} elements (the array's length)`, `[${shape.join(', ')}] (${numel} elements)`),
      );
    return [...shape];
  };
  // No prototype: a key "__proto__" is then an own property like any other.
  const header: Record<string, unknown> = Object.assign(Object.create(null), { __metadata__: { format: 'pt' } });
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const v = stateDict[name];
    let bytes: Uint8Array, dtype: string, shape: number[];
    if (typeof v === 'number' || typeof v === 'bigint') {
      // An integer scalar (num_batches_tracked): int64, as PyTorch saves it.
      if (typeof v === 'number' ? !Number.isSafeInteger(v) : BigInt.asIntN(64, v) !== v)
        throw new RangeError(invalidParameterError(name, "an integer in int64's range", String(v)));
      bytes = new Uint8Array(new BigInt64Array([BigInt(v)]).buffer);
      dtype = 'I64';
      shape = [];
    } else if (v instanceof Float64Array) {
      bytes = new Uint8Array(v.slice().buffer);
      dtype = 'F64';
      shape = shapeFor(name, v, v.length);
    } else {
      if (!(v instanceof Float32Array) && !(Array.isArray(v) && v.every((e) => typeof e === 'number')))
        throw typeError(name, 'a Float32Array, Float64Array, array of numbers or integer', v);
      const f = Float32Array.from(v as ArrayLike<number>);
      bytes = new Uint8Array(f.buffer);
      dtype = 'F32';
      shape = shapeFor(name, v, f.length);
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  // The header is padded with spaces so that the data starts 8-byte aligned (counted in bytes: names may be UTF-8).
  const json = JSON.stringify(header),
    bytesOfJson = new TextEncoder().encode(json).length;
  const head = new TextEncoder().encode(json + ' '.repeat((8 - ((8 + bytesOfJson) % 8)) % 8));
  const file = new Uint8Array(8 + head.length + offset);
  new DataView(file.buffer).setBigUint64(0, BigInt(head.length), true);
  file.set(head, 8);
  let at = 8 + head.length;
  for (const c of chunks) {
    file.set(c, at);
    at += c.length;
  }
  return file;
}
