// A one-node ONNX model, Y = BatchNormalization(X, scale, B, mean, var), encoded
// by hand: the few protobuf fields of onnx.proto it needs, no dependency.
// Inference mode (training_mode = 0); the four per-channel inputs are initializers.

// Protobuf wire types.
const VARINT = 0,
  I32 = 5,
  LEN = 2;

/**
 * @param {number} n
 * @returns {number[]}
 */
function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

/** @type {(field: number, wire: number) => number[]} */
const tag = (field, wire) => varint((field << 3) | wire);
/** @type {(field: number, b: ArrayLike<number> & Iterable<number>) => number[]} */
const bytes = (field, b) => [...tag(field, LEN), ...varint(b.length), ...b];
/** @type {(field: number, s: string) => number[]} */
const str = (field, s) => bytes(field, [...new TextEncoder().encode(s)]);
/** @type {(field: number, n: number) => number[]} */
const int = (field, n) => [...tag(field, VARINT), ...varint(n)];
/** @type {(field: number, x: number) => number[]} */
const f32 = (field, x) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...tag(field, I32), ...b];
};

const FLOAT = 1; // TensorProto.DataType.FLOAT

/**
 * TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9.
 * @param {string} name
 * @param {number[]} dims
 * @param {ArrayLike<number>} data
 */
function tensor(name, dims, data) {
  const raw = new Uint8Array(Float32Array.from(data).buffer);
  return [...dims.flatMap((d) => int(1, d)), ...int(2, FLOAT), ...str(8, name), ...bytes(9, [...raw])];
}

/**
 * ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1, shape = 2: { dim = 1: { dim_value = 1 } } } } }.
 * @param {string} name
 * @param {number[]} dims
 */
function valueInfo(name, dims) {
  const shape = dims.flatMap((d) => bytes(1, int(1, d)));
  const tensorType = [...int(1, FLOAT), ...bytes(2, shape)];
  return [...str(1, name), ...bytes(2, bytes(1, tensorType))];
}

/**
 * @param {{ shape: number[], scale: ArrayLike<number>, bias: ArrayLike<number>, mean: ArrayLike<number>, variance: ArrayLike<number>, eps?: number, opset?: number }} p
 * @returns {Uint8Array} the ModelProto bytes
 */
export function batchNormModel({ shape, scale, bias, mean, variance, eps = 1e-5, opset = 15 }) {
  const C = shape[1];
  // AttributeProto: name = 1, f = 2, type = 20 (FLOAT = 1).
  const epsilon = [...str(1, 'epsilon'), ...f32(2, eps), ...int(20, 1)];
  // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
  const node = [
    ...['X', 'scale', 'B', 'input_mean', 'input_var'].flatMap((s) => str(1, s)),
    ...str(2, 'Y'),
    ...str(3, 'bn'),
    ...str(4, 'BatchNormalization'),
    ...bytes(5, epsilon),
  ];
  // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
  const graph = [
    ...bytes(1, node),
    ...str(2, 'batchnorm'),
    ...bytes(5, tensor('scale', [C], scale)),
    ...bytes(5, tensor('B', [C], bias)),
    ...bytes(5, tensor('input_mean', [C], mean)),
    ...bytes(5, tensor('input_var', [C], variance)),
    ...bytes(11, valueInfo('X', shape)),
    ...bytes(12, valueInfo('Y', shape)),
  ];
  // ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8 { domain = 1, version = 2 }.
  const model = [...int(1, 8), ...str(2, 'batchnorm-bench'), ...bytes(7, graph), ...bytes(8, [...str(1, ''), ...int(2, opset)])];
  return Uint8Array.from(model);
}
