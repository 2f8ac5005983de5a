// Compiled by test/types.test.ts under the project's strict options:
// issue 19 item 10, an affine module's parameters need no non-null assertion.
import { BatchNorm1d, BatchNorm2d, fromKeras, type Parameter } from '../../lib/index.js';

const bn = new BatchNorm2d(64);
const w: Parameter = bn.weight;
const grad: Float32Array | Float64Array | null = bn.weight.grad;
bn.bias.data.fill(0);
const explicit = new BatchNorm1d(3, { affine: true, eps: 1e-3 });
explicit.weight.data[0] = 1;

const plain = new BatchNorm2d(64, { affine: false });
// @ts-expect-error: a module built with affine: false has no weight
plain.weight.data;
const maybe: Parameter | null = plain.weight;

const keras = new BatchNorm2d(64, fromKeras());
// @ts-expect-error: fromKeras may turn affine off (center/scale false): weight may be null
keras.weight.data;

export { w, grad, maybe };
