/**
 * Every argument check of the TypeScript side and every message it throws, in
 * one style (sharp's `lib/is`): the argument's name, what was expected, what
 * was received, and the fix where there is one —
 * "Expected a Float32Array of length 3 for weight but received a Parameter { data, grad }: pass bn.weight.data".
 *
 * A good call allocates nothing here: messages are built only on the way to
 * an error. Typed arrays are read through the intrinsic getters of
 * `%TypedArray%.prototype` (length, buffer, byteOffset, the type's name), never
 * through the object's own properties, which a subclass or an own property
 * could make lie; they also recognize arrays from another realm (`vm`) and
 * refuse a Proxy instead of failing inside V8 with "incompatible receiver".
 */
import type { FloatArray } from './backend/kernels.js';

// ------------------------------------------------------------ typed arrays, read honestly

const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
function intrinsicGetter(key: PropertyKey): (this: unknown) => unknown {
  return Object.getOwnPropertyDescriptor(TypedArrayPrototype, key)!.get! as (this: unknown) => unknown;
}
const tagGetter = intrinsicGetter(Symbol.toStringTag);
const lengthGetter = intrinsicGetter('length');
const bufferGetter = intrinsicGetter('buffer');
const byteOffsetGetter = intrinsicGetter('byteOffset');
const byteLengthGetter = intrinsicGetter('byteLength');
const resizableGetter = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get as ((this: ArrayBuffer) => boolean) | undefined;

/** 'Float32Array', 'Uint8Array', … for a real typed array of any realm; undefined for anything else (a Proxy included). */
export function typedArrayName(v: unknown): string | undefined {
  return typeof v === 'object' && v !== null ? (tagGetter.call(v) as string | undefined) : undefined;
}
/** Whether v is a real Float32Array or Float64Array (of any realm). */
export function isFloatArray(v: unknown): v is FloatArray {
  const t = typedArrayName(v);
  return t === 'Float32Array' || t === 'Float64Array';
}
export function isFloat64(a: FloatArray): boolean {
  return tagGetter.call(a) === 'Float64Array';
}
export function lengthOf(a: ArrayBufferView): number {
  return lengthGetter.call(a) as number;
}
export function bufferOf(a: ArrayBufferView): ArrayBufferLike {
  return bufferGetter.call(a) as ArrayBufferLike;
}
function byteOffsetOf(a: ArrayBufferView): number {
  return byteOffsetGetter.call(a) as number;
}
function byteLengthOf(a: ArrayBufferView): number {
  return byteLengthGetter.call(a) as number;
}

/** Whether two arrays share any memory (views of one buffer whose byte ranges meet). */
export function sharesMemory(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (bufferOf(a) !== bufferOf(b)) return false;
  const a0 = byteOffsetOf(a),
    b0 = byteOffsetOf(b);
  return a0 < b0 + byteLengthOf(b) && b0 < a0 + byteLengthOf(a);
}

/** Whether a and b are the same memory (the same view or an exact alias: in place). */
export function sameMemory(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return bufferOf(a) === bufferOf(b) && byteOffsetOf(a) === byteOffsetOf(b) && byteLengthOf(a) === byteLengthOf(b);
}

/** True when the view's buffer was transferred or detached. */
export function isDetached(a: ArrayBufferView): boolean {
  const b = bufferOf(a);
  if (typeof SharedArrayBuffer !== 'undefined' && b instanceof SharedArrayBuffer) return false;
  try {
    new Uint8Array(b, 0, 0);
  } catch {
    return true;
  }
  return false;
}

function isResizable(a: ArrayBufferView): boolean {
  const b = bufferOf(a);
  return (
    resizableGetter !== undefined &&
    !(typeof SharedArrayBuffer !== 'undefined' && b instanceof SharedArrayBuffer) &&
    resizableGetter.call(b as ArrayBuffer) === true
  );
}

// ------------------------------------------------------------ describing what came

/** "a Float32Array of length 3", "an Array", "the number -1", "null", … */
export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  const tag = typedArrayName(v);
  if (tag !== undefined) return `${/^(Int|[AEIO])/.test(tag) ? 'an' : 'a'} ${tag} of length ${lengthOf(v as ArrayBufferView)}`;
  if (typeof v === 'object' && TypedArrayPrototype.isPrototypeOf(v))
    return 'an object that looks like a typed array but is not one (a Proxy or a subclass instance without storage)';
  if (Array.isArray(v)) return 'an Array';
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'bigint') return 'a bigint';
  if (typeof v === 'symbol') return 'a symbol';
  if (v instanceof ArrayBuffer) return 'an ArrayBuffer';
  return 'an object';
}

/** describe, but a short string is echoed: for options that take names ("float16", "NLHW"). */
export function describeValue(v: unknown): string {
  return typeof v === 'string' && v.length <= 40 ? `the string ${JSON.stringify(v)}` : describe(v);
}

function withFix(message: string, fix: string | undefined): string {
  return fix ? `${message}: ${fix}` : message;
}

/** The one message form: "Expected <expected> for <name> but received <received>[: <fix>]". */
export function invalidParameterError(name: string, expected: string, received: string, fix?: string): string {
  return withFix(`Expected ${expected} for ${name} but received ${received}`, fix);
}
export function typeError(name: string, expected: string, v: unknown, fix?: string): TypeError {
  return new TypeError(invalidParameterError(name, expected, describe(v), fix));
}
export function rangeError(name: string, expected: string, v: unknown, fix?: string): RangeError {
  return new RangeError(invalidParameterError(name, expected, describe(v), fix));
}

// ------------------------------------------------------------ options objects

/**
 * An options object: undefined is `{}`; anything else that is not a plain
 * object (null, a string, an array, a number) is a TypeError, and so is an
 * unknown key, naming it and the accepted ones (PyTorch raises on an
 * unexpected keyword). `hints` maps a common wrong key to the right one.
 */
export function checkOptions(options: unknown, fn: string, accepted: readonly string[], hints?: Readonly<Record<string, string>>): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new TypeError(`Expected an options object for ${fn} but received ${describe(options)}`);
  for (const key in options) {
    if (!accepted.includes(key)) {
      const hint = hints && Object.prototype.hasOwnProperty.call(hints, key) ? hints[key] : undefined;
      throw new TypeError(withFix(`Expected only the options ${accepted.join(', ')} for ${fn} but received an unknown option ${JSON.stringify(key)}`, hint));
    }
  }
}

export function checkBoolean(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') throw typeError(name, 'a boolean', v);
  return v;
}

/** eps: a finite number in [0, 1]: 0 as in PyTorch and TF.js; above 1 it is a typo (1e5 for 1e-5) or a swapped argument. */
export function checkEps(v: unknown, name = 'eps'): number {
  if (typeof v !== 'number') throw typeError(name, 'a number in [0, 1]', v);
  if (!(v >= 0 && v <= 1)) throw rangeError(name, 'a number in [0, 1]', v, "it is added to the variance (PyTorch's default 1e-5, Keras' 1e-3)");
  return v;
}

/** momentum: a number in [0, 1] (PyTorch's convention), or null where `nullable` (a cumulative average). */
export function checkMomentum(v: unknown, nullable: boolean, name = 'momentum'): number | null {
  if (v === null && nullable) return null;
  const expected = nullable ? 'a number in [0, 1] or null' : 'a number in [0, 1]';
  if (typeof v !== 'number') throw typeError(name, expected, v);
  if (!(v >= 0 && v <= 1)) throw rangeError(name, expected, v);
  return v;
}

/** A positive integer, e.g. numFeatures. */
export function checkPositiveInteger(v: unknown, name: string): number {
  if (typeof v !== 'number') throw typeError(name, 'a positive integer', v);
  if (!Number.isSafeInteger(v) || v < 1) throw rangeError(name, 'a positive integer', v);
  return v;
}

export function checkDtype(v: unknown): 'float32' | 'float64' {
  if (v === 'float32' || v === 'float64') return v;
  throw new (typeof v === 'string' ? RangeError : TypeError)(invalidParameterError('dtype', "'float32' or 'float64'", describeValue(v)));
}

export function checkOneOf<T extends string>(v: unknown, name: string, accepted: readonly T[]): T {
  if (typeof v === 'string' && (accepted as readonly string[]).includes(v)) return v as T;
  throw new (typeof v === 'string' ? RangeError : TypeError)(invalidParameterError(name, `one of ${accepted.join(', ')}`, describeValue(v)));
}

// ------------------------------------------------------------ tensors

/** A tensor as read once: its data, and a copy of its shape. */
export interface ReadTensor {
  data: FloatArray;
  shape: number[];
}

function shapeText(shape: readonly unknown[]): string {
  return `[${shape.map((d) => (typeof d === 'number' ? String(d) : describe(d))).join(', ')}]`;
}

/**
 * Reads a tensor argument `{ data, shape }` once: `data` and `shape` are each
 * read one time, the shape's length and elements one time each into a fresh
 * array (no iterator, no second read a getter could answer differently), and
 * everything is checked on the copy: a Float32Array/Float64Array and a shape
 * of non-negative integers whose product is its length. A dimension may be 0
 * (an empty batch), as in PyTorch.
 */
export function readTensor(t: unknown, name: string, channelsLastName = "'channelsLast'"): ReadTensor {
  if (typeof t !== 'object' || t === null) throw typeError(name, 'a tensor { data, shape }', t);
  const { data, shape } = t as { data: unknown; shape: unknown };
  if (typeof (t as { dataSync?: unknown }).dataSync === 'function')
    throw new TypeError(
      invalidParameterError(
        name,
        'a tensor { data, shape }',
        'a tf.Tensor',
        `pass { data: t.dataSync(), shape: t.shape }, and layout: ${channelsLastName}, since TF.js is channels-last`,
      ),
    );
  if (shape === undefined)
    throw new TypeError(
      invalidParameterError(`${name}.shape`, 'an array of non-negative integers', 'undefined', `the tensor has no shape; pass { data, shape: [N, C, ...] }`),
    );
  if (!isFloatArray(data)) throw typeError(`${name}.data`, 'a Float32Array or Float64Array', data);
  if (!Array.isArray(shape)) throw new RangeError(invalidParameterError(`${name}.shape`, 'an array of non-negative integers', describe(shape)));
  const rank = shape.length;
  const copy = new Array<number>(rank);
  let numel = 1,
    ok = true;
  for (let i = 0; i < rank; i++) {
    const d = shape[i] as unknown;
    copy[i] = d as number;
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) ok = false;
    else numel *= d;
  }
  if (!ok) throw new RangeError(invalidParameterError(`${name}.shape`, 'an array of non-negative integers', shapeText(copy)));
  // A detached buffer's views have length 0: the probe runs only on the way to an error.
  if (numel !== lengthOf(data)) {
    if (isDetached(data)) throw new TypeError(invalidParameterError(`${name}.data`, 'a readable array', 'one whose buffer is detached (transferred)'));
    throw new RangeError(invalidParameterError(`${name}.data`, `${numel} elements for shape ${shapeText(copy)}`, describe(data)));
  }
  return { data, shape: copy };
}

export function checkRank(shape: readonly number[], name: string, min: number): void {
  if (shape.length < min) throw new RangeError(invalidParameterError(`${name}.shape`, `at least ${min} dimensions (N, C, …)`, `shape ${shapeText(shape)}`));
}

/** PyTorch's check (and words): batch statistics need two or more values per channel (none, an empty batch, is fine). */
export function checkValuesPerChannel(shape: readonly number[], valuesPerChannel: number): void {
  if (valuesPerChannel === 1) throw new RangeError(`Expected more than 1 value per channel when training, got input size ${shapeText(shape)}`);
}

/** A parameter object { data, grad } where its data was meant: say so. */
function parameterHint(v: unknown, name: string): string | undefined {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && 'data' in v && 'grad' in v)
    return `pass the parameter's array, ${name}.data (e.g. bn.${name}.data)`;
  return undefined;
}

/**
 * A per-channel or elementwise array argument of type `type` (x's: read
 * once by the caller) and `length` elements, checked under the name the user
 * gave it. A typed array of the other float type is a TypeError, a wrong
 * length a RangeError; when its length is `hintLast` (the input's last
 * dimension), the message suggests the channels-last layout `hintLayout`.
 */
export function checkArray(v: unknown, name: string, type: string, length: number, nullable = false, hintLast = -1, hintLayout: string | null = null): void {
  if (nullable && (v === null || v === undefined)) return;
  if (typedArrayName(v) !== type) {
    const expected = `a ${type} of length ${length}${nullable ? ' or null' : ''}`;
    const received = typeof v === 'object' && v !== null && 'data' in v && 'grad' in v ? 'a Parameter { data, grad }' : describe(v);
    throw new TypeError(invalidParameterError(name, expected, received, parameterHint(v, name)));
  }
  const a = v as FloatArray,
    got = lengthOf(a);
  if (got !== length) {
    if (isDetached(a)) throw new TypeError(invalidParameterError(name, `a ${type} of length ${length}`, 'one whose buffer is detached (transferred)'));
    const fix =
      hintLayout && got === hintLast
        ? `the input's last dimension is ${got}; if the input is channels-last (as TF.js'), pass layout: '${hintLayout}'`
        : undefined;
    throw new RangeError(invalidParameterError(name, `a ${type} of length ${length}`, describe(a), fix));
  }
}

/** An async call holds its arrays past this turn: JS must not be able to shrink them meanwhile. */
export function checkNotResizable(a: FloatArray, name: string): void {
  if (isResizable(a))
    throw new TypeError(
      invalidParameterError(
        name,
        `a ${tagGetter.call(a) as string} of length ${lengthOf(a)}`,
        'one backed by a resizable ArrayBuffer, which an async call cannot hold (use the sync form)',
      ),
    );
}

/** An output that overlaps another array; `inPlace`: it could have been that array exactly. */
export function overlapError(outName: string, name: string, inPlace: boolean): RangeError {
  return new RangeError(`Expected ${outName} not to share memory with ${name}${inPlace ? ' unless it is the same array (in place)' : ''}, but it overlaps it`);
}

/** `out` is `a` itself (in place: true) or shares no memory with it (false). */
export function checkInPlaceOrApart(out: FloatArray, a: FloatArray, outName: string, name: string): boolean {
  if (!sharesMemory(out, a)) return false;
  if (!sameMemory(out, a)) throw overlapError(outName, name, true);
  return true;
}

/**
 * `out` shares no memory with `a`; their buffers were read once by the caller
 * (`bufferOrNull`): a call compares references, and reads offsets only for
 * arrays of one buffer.
 */
export function checkApart(
  out: FloatArray,
  outBuffer: ArrayBufferLike,
  a: FloatArray | null | undefined,
  aBuffer: ArrayBufferLike | null,
  outName: string,
  name: string,
): void {
  if (a && aBuffer === outBuffer && sharesMemory(out, a)) throw overlapError(outName, name, false);
}

export function bufferOrNull(a: FloatArray | null | undefined): ArrayBufferLike | null {
  return a ? bufferOf(a) : null;
}

/** Running mean and variance come together or not at all. */
export function checkBothOrNeither(mean: unknown, variance: unknown, meanName: string, varName: string): void {
  const m = mean !== null && mean !== undefined,
    v = variance !== null && variance !== undefined;
  if (m !== v)
    throw new TypeError(`Expected ${meanName} and ${varName} to be both arrays or both null but received ${m ? 'an array and null' : 'null and an array'}`);
}

/** The binding's words for a bounded number: "Expected eps to be a number in [0, Infinity] but received …". */
export function kernelNumberError(name: string, lo: number, hi: number, openLo: boolean, v: unknown): RangeError {
  return new RangeError(`Expected ${name} to be a number in ${openLo ? '(' : '['}${lo}, ${hi}] but received ${describe(v)}`);
}

/** The kernels' groups must divide the channels (the binding says the same). */
export function groupsError(c: number, groups: number): RangeError {
  return new RangeError(invalidParameterError('groups', `a divisor of c (${c})`, describe(groups)));
}

export function kernelSizeError(n: number, c: number, s: number): RangeError {
  return new RangeError(`Expected n * c * s to be at most 2^53 but received ${n} * ${c} * ${s}`);
}

export function detachedError(name: string, expected: string): TypeError {
  return new TypeError(invalidParameterError(name, expected, 'one whose buffer is detached'));
}

/** Eval normalizes with the running statistics: they must be given. */
export function evalNeedsStatisticsError(): TypeError {
  return new TypeError('Expected runningMean and runningVar when training is false (evaluation uses the running statistics) but received null');
}

export function gradientShapeError(shapeName: string, shape: readonly number[], got: readonly number[], name = 'gradOutput'): RangeError {
  return new RangeError(`Expected ${name} of ${shapeName} ${shapeText(shape)} but received shape ${shapeText(got)}`);
}

/**
 * For the `checkFinite` option: throws a RangeError naming the first channel
 * (lowest index) holding a NaN or an infinity, and where.
 */
export function checkFinite(data: FloatArray, shape: readonly number[], c: number, s: number, channelsLast: boolean, name: string): void {
  const channelOf = (i: number) => (channelsLast ? i % c : Math.floor(i / s) % c);
  let bad = -1;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      if (bad < 0 || channelOf(i) < channelOf(bad)) bad = i;
    }
  }
  if (bad < 0) return;
  const at: number[] = [];
  for (let k = shape.length - 1, r = bad; k >= 0; k--) {
    at.unshift(r % shape[k]);
    r = Math.floor(r / shape[k]);
  }
  throw new RangeError(`Expected finite values in ${name} (checkFinite) but channel ${channelOf(bad)} holds ${data[bad]} at index [${at.join(', ')}]`);
}

/** A per-channel allocation that cannot be made (a channel count past typed arrays' limit). */
export function channelCountError(name: string, c: number): RangeError {
  return new RangeError(invalidParameterError(name, 'a channel count that fits a typed array (at most 2^32 - 1)', `shape with ${c} channels`));
}

// ------------------------------------------------------------ files

/** A file (safetensors) that does not hold what it should: "Expected <expected> for <name> but the file has <has>". */
export function fileError(name: string, expected: string, has: string): RangeError {
  return new RangeError(`Expected ${expected} for ${name} but the file has ${has}`);
}

// ------------------------------------------------------------ module-specific words

/** A module's input of the wrong rank or channel count, with the layout hint when the last dimension is C. */
export function moduleShapeError(
  module: string,
  numFeatures: number,
  ranks: readonly number[],
  expectedShapes: string,
  layout: string,
  channelsLastLayout: string | null,
  shape: readonly number[],
): RangeError {
  const received = shapeText(shape);
  if (!ranks.includes(shape.length))
    return new RangeError(
      `${module} expected ${ranks.map((r) => `${r}D`).join(' or ')} input (got ${shape.length}D input): expected shape ${expectedShapes} (layout ${layout}) but received ${received}`,
    );
  const fix =
    channelsLastLayout && shape[shape.length - 1] === numFeatures
      ? `: its last dimension is ${numFeatures}; if the input is channels-last (as TF.js'), pass layout: '${channelsLastLayout}'`
      : '';
  return new RangeError(
    `${module} expected input with ${numFeatures} channels: expected shape ${expectedShapes} (layout ${layout}) but received ${received}${fix}`,
  );
}

/** A module's running statistic assigned something other than a float array of numFeatures values (or null). */
export function checkStatisticAssignment(v: unknown, module: string, name: string, numFeatures: number): void {
  if (v === null) return;
  if (!isFloatArray(v))
    throw typeError(
      `${module}.${name}`,
      `a Float32Array or Float64Array of length ${numFeatures}, or null`,
      v,
      Array.isArray(v) ? `assign a typed array (${name} = Float32Array.from(values)), or load values with loadStateDict` : undefined,
    );
  if (lengthOf(v) !== numFeatures) throw rangeError(`${module}.${name}`, `a Float32Array or Float64Array of length ${numFeatures}, or null`, v);
}

/** PyTorch's words for a state dict whose keys are not the module's. */
export function stateDictKeysError(module: string, missing: readonly string[], unexpected: readonly string[]): TypeError {
  const parts = [];
  if (missing.length) parts.push(`Missing key(s) in state_dict: ${missing.map((k) => `"${k}"`).join(', ')}.`);
  if (unexpected.length) parts.push(`Unexpected key(s) in state_dict: ${unexpected.map((k) => `"${k}"`).join(', ')}.`);
  return new TypeError(`Error(s) in loading state_dict for ${module}: ${parts.join(' ')}`);
}

/** PyTorch's words for a state-dict value of the wrong size (`want`: the model's length, or its shape). */
export function sizeMismatchError(key: string, got: number | readonly number[], want: number | readonly number[]): RangeError {
  return new RangeError(
    `size mismatch for ${key}: copying a param with shape [${typeof got === 'number' ? got : got.join(', ')}] from checkpoint, the shape in current model is [${typeof want === 'number' ? want : want.join(', ')}].`,
  );
}

/** Keras' center and scale, which this package (as PyTorch's affine) has as one. */
export function centerScaleError(center: boolean, scale: boolean): RangeError {
  return new RangeError(
    `Expected center and scale to be equal (this package learns γ and β together, as PyTorch's affine) but received center ${center} and scale ${scale}`,
  );
}

export function busyError(module: string, method: string, pending: string): Error {
  return new Error(`${module}.${method}() called while ${pending}() is still running; await it first`);
}

// ------------------------------------------------------------ LayerNorm, RMSNorm, GroupNorm, InstanceNorm

/** A normalized shape: a positive integer or a non-empty array of them (PyTorch's `int or list`). */
export function checkNormalizedShape(v: unknown): number[] {
  const shape = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 1))
    throw new TypeError(
      invalidParameterError('normalizedShape', 'a positive integer or a non-empty array of them', Array.isArray(v) ? shapeText(v) : describe(v)),
    );
  return [...(shape as number[])];
}

/** PyTorch's words: the input must end in normalizedShape. */
export function normalizedShapeError(normalizedShape: readonly number[], shape: readonly number[]): RangeError {
  return new RangeError(
    `Given normalized_shape=${shapeText(normalizedShape)}, expected input with shape [*, ${normalizedShape.join(', ')}], but got input of size${shapeText(shape)}`,
  );
}

/** PyTorch's words (F.group_norm): the channels must divide into the groups. */
export function groupsNotDividingError(shape: readonly number[], groups: number): RangeError {
  return new RangeError(
    `Expected number of channels in input to be divisible by num_groups, but got input of shape ${shapeText(shape)} and num_groups=${groups}`,
  );
}

/** PyTorch's words (nn.GroupNorm). */
export function groupNormModuleError(): RangeError {
  return new RangeError('num_channels must be divisible by num_groups');
}

/** PyTorch's words: instance statistics need two or more values per instance. */
export function spatialError(shape: readonly number[]): RangeError {
  return new RangeError(`Expected more than 1 spatial element when training, got input size ${shapeText(shape)}`);
}

/** InstanceNorm normalizing with running statistics it was not given. */
export function instanceNeedsStatisticsError(): TypeError {
  return new TypeError('Expected runningMean and runningVar when useInputStats is false (normalizing with the running statistics) but received null');
}

/** PyTorch's words for an InstanceNorm input of the wrong rank. */
export function instanceRankError(module: string, rank: number, got: number): RangeError {
  return new RangeError(`${module} expected ${rank}D or ${rank + 1}D input (got ${got}D input)`);
}

/** PyTorch's words for an InstanceNorm input whose channels are not numFeatures. */
export function instanceChannelsError(module: string, dim: number, numFeatures: number, got: number, layout: string): RangeError {
  return new RangeError(`${module} expected input's size at dim=${dim} to match num_features (${numFeatures}), but got: ${got} (layout ${layout}).`);
}

// ------------------------------------------------------------ collectives and split phases (SyncBatchNorm)

/** A Collective { rank, worldSize, allGather, allReduceSum }: checked at construction and before every use (a rank set out of range later must not send a wrong rank's data). */
export function checkCollective(c: unknown, name = 'collective'): void {
  if (typeof c !== 'object' || c === null) throw typeError(name, 'a Collective { rank, worldSize, allGather, allReduceSum }', c);
  const { rank, worldSize, allGather, allReduceSum } = c as Record<string, unknown>;
  if (typeof worldSize !== 'number') throw typeError(`${name}.worldSize`, 'a positive integer', worldSize);
  if (!Number.isSafeInteger(worldSize) || worldSize < 1) throw rangeError(`${name}.worldSize`, 'a positive integer', worldSize);
  const ranks = `an integer in [0, ${worldSize - 1}] (worldSize ${worldSize})`;
  if (typeof rank !== 'number') throw typeError(`${name}.rank`, ranks, rank);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw rangeError(`${name}.rank`, ranks, rank, 'give each member of the group its own rank');
  if (typeof allGather !== 'function') throw typeError(`${name}.allGather`, 'a function (Float64Array) => Promise<Float64Array>', allGather);
  if (typeof allReduceSum !== 'function') throw typeError(`${name}.allReduceSum`, 'a function (Float64Array) => Promise<Float64Array>', allReduceSum);
}

/** A collective's Promise rejected: the rank, the op, and the transport's words. */
export function collectiveRejectedError(name: string, op: string, rank: number, worldSize: number, cause: unknown): Error {
  const err = new Error(`${name}.${op} (rank ${rank} of ${worldSize}) rejected: ${cause instanceof Error ? cause.message : String(cause)}`);
  (err as Error & { cause?: unknown }).cause = cause;
  return err;
}

/** A collective resolved to something other than `expected` float64 values (`what` says where the number comes from). */
export function collectiveResultError(name: string, op: string, expected: number, what: string, result: unknown): TypeError | RangeError {
  const full = `${name}.${op}'s result`;
  if (typedArrayName(result) !== 'Float64Array') return typeError(full, `a Float64Array of ${expected} values (${what})`, result);
  return rangeError(
    full,
    `a Float64Array of ${expected} values (${what})`,
    result,
    'do all ranks pass the same lengths and call the same collectives in the same order?',
  );
}

/** What the ranks of a group called differently, as every rank sees it (WorkerCollective). */
export function collectiveMismatchError(op: string, what: 'collective' | 'length', perRank: readonly string[]): Error {
  const list = perRank.map((v, r) => `${v} (rank ${r})`).join(', ');
  if (what === 'collective') return new Error(`Expected every rank to call the same collective, but the ranks called ${list}`);
  return new RangeError(`Expected every rank to pass the same length to ${op}, but the ranks passed ${list}`);
}

/** The statistics of a slice as split-phase functions take them: a Float64Array per channel. */
export function checkStatistic(v: unknown, name: string, c: number): Float64Array {
  if (typedArrayName(v) !== 'Float64Array') throw typeError(name, `a Float64Array of length ${c} (one per channel)`, v);
  if (lengthOf(v as Float64Array) !== c) throw rangeError(name, `a Float64Array of length ${c} (one per channel)`, v);
  return v as Float64Array;
}

/** A count of values per channel (a non-negative integer), of a rank's slice or of the whole batch. */
export function checkCount(v: unknown, name: string, min = 0): number {
  const expected = min > 0 ? `an integer of at least ${min}` : 'a non-negative integer';
  if (typeof v !== 'number') throw typeError(name, expected, v);
  if (!Number.isSafeInteger(v) || v < min) throw rangeError(name, expected, v);
  return v;
}

/** PyTorch's check for SyncBatchNorm: more than one value per channel over all the ranks. */
export function syncValuesPerChannelError(worldSize: number, shape: readonly number[]): RangeError {
  return new RangeError(`Expected more than 1 value per channel when training, got 1 over the ${worldSize} ranks (input size here ${shapeText(shape)})`);
}

// ------------------------------------------------------------ per-call contexts (a module's saved forwards)

/** A backward with no forward to differentiate. */
export function noForwardError(module: string, method: string): Error {
  return new Error(`${module}.${method}() needs a forward() first: there are no saved statistics`);
}

/** `of` is not the result object of one of this module's forwards. */
export function notAContextError(module: string, method: string, v: unknown, other: boolean): TypeError {
  return new TypeError(
    invalidParameterError(
      `of of ${module}.${method}()`,
      `the result of a forward() of this ${module}`,
      other ? 'the result of a forward() of another module' : describe(v),
      other ? 'call the backward of the module that made it' : 'pass the object forward() returned (not a copy of it, nor its data)',
    ),
  );
}

/** Backward twice through one forward: PyTorch's "Trying to backward through the graph a second time". */
export function contextUsedError(module: string, method: string, which: string): Error {
  return new Error(
    `${module}.${method}() was already called for ${which}: each forward is differentiated once (PyTorch: "Trying to backward through the graph a second time"); run forward again, add the gradients up before one backward, or pass retainGraph: true to the backwards before the last`,
  );
}

/** The saved input of a forward was written over since (PyTorch's version-counter error). */
export function contextOverwrittenError(module: string, method: string, which: string, what: 'input' | 'output', by: 'inPlace' | 'out' | 'backward'): Error {
  const how =
    by === 'inPlace'
      ? 'a forward overwrote in place (out was input.data): give forward a separate out, or none, when a backward follows'
      : by === 'out'
        ? 'a later forward wrote its output over (its out was that array): give each forward waiting for a backward its own out'
        : 'a backward overwrote (its out was that array): run forward again, or give backward a separate out';
  return new Error(`${module}.${method}() needs the ${what} of ${which}, which ${how}`);
}

/** The saved input of a forward was detached (transferred) since. */
export function contextDetachedError(module: string, method: string, whose: string): TypeError {
  return new TypeError(
    invalidParameterError(
      `${module}.${method}()`,
      `${whose} input (input.data) still readable`,
      'one whose buffer was detached (transferred) since',
      'keep it until the backward, or run forward again',
    ),
  );
}
