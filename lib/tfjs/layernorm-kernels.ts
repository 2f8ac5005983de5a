/**
 * tf.layers' LayerNormalization as two kernels of this package, registered in
 * TF.js' kernel registry (TF.js has no layer-norm kernel: its layer builds one
 * from moments, tiles and FusedBatchNorm). Both run this package's LayerNorm
 * through its functional API (`layerNorm`, `layerNormBackward`) on the cpu
 * backend's own Float32Arrays.
 *
 * - `LayerNormRows` (x, scale, offset; attrs normalizedSize, epsilon) →
 *   [y, mean, invstd]: x is rows of its last `normalizedSize` values (the
 *   layer moves the normalized axes last), each row normalized by its own
 *   mean and biased variance, `y = (x − mean)·invstd·scale + offset`,
 *   `invstd = 1/√(var + ε)`; scale and offset are 1-D of normalizedSize
 *   values; mean and invstd one per row, for the backward.
 * - `LayerNormRowsGrad` (dy, x, scale, mean, invstd; attr normalizedSize) →
 *   [dx, dscale, doffset].
 */
import { getKernel, type KernelConfig, type NamedAttrMap, type NamedTensorInfoMap, type TensorInfo } from '@tensorflow/tfjs-core';
import { describe } from '../backend/validate.js';
import { layerNorm, layerNormBackward } from '../norm-functional.js';
import { asCpuBackend, kernelEps, sizeOf, valuesOf, type CpuBackend } from './cpu.js';

export const LayerNormRows = 'LayerNormRows';
export const LayerNormRowsGrad = 'LayerNormRowsGrad';

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap };

/** x's (rows, d) view: d, its last `normalizedSize` values. */
function rowsOf(x: TensorInfo, normalizedSize: unknown, kernel: string): { rows: number; d: number } {
  const size = sizeOf(x.shape);
  const d = normalizedSize;
  if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 1 || size % d !== 0)
    throw new RangeError(
      `${kernel}: expected normalizedSize to be a positive integer dividing x's size ${size} (x's shape [${x.shape.join(', ')}]) but received ${describe(d)}`,
    );
  return { rows: size / d, d };
}

function parameter(backend: CpuBackend, inputs: NamedTensorInfoMap, name: string, d: number, kernel: string): Float32Array {
  const t = inputs[name];
  if (t == null) throw new TypeError(`${kernel}: expected a float32 tensor of shape [${d}] for ${name} but received none`);
  if (sizeOf(t.shape) !== d) throw new RangeError(`${kernel}: expected ${name} of ${d} values (normalizedSize) but received shape [${t.shape.join(', ')}]`);
  return valuesOf(backend, t, name, kernel);
}

function perRow(backend: CpuBackend, inputs: NamedTensorInfoMap, name: string, rows: number, kernel: string): Float32Array {
  const t = inputs[name];
  if (t == null || sizeOf(t.shape) !== rows)
    throw new RangeError(`${kernel}: expected ${name} of ${rows} values (one per row) but received ${t == null ? 'none' : `shape [${t.shape.join(', ')}]`}`);
  return valuesOf(backend, t, name, kernel);
}

function forward(args: KernelArgs): TensorInfo[] {
  const backend = asCpuBackend(args.backend, LayerNormRows);
  const { inputs, attrs = {} } = args;
  const x = inputs.x!;
  const data = valuesOf(backend, x, 'x', LayerNormRows);
  const { rows, d } = rowsOf(x, attrs.normalizedSize, LayerNormRows);
  // layerNorm's eps is in [0, 1]; 0 becomes the smallest positive double (./cpu.ts), as in the batch-norm kernels.
  const eps = kernelEps(attrs.epsilon as number, LayerNormRows);
  const weight = parameter(backend, inputs, 'scale', d, LayerNormRows),
    bias = parameter(backend, inputs, 'offset', d, LayerNormRows);
  const r = layerNorm({ data, shape: [rows, d] }, [d], { weight, bias, eps });
  return [
    backend.makeTensorInfo([...x.shape], 'float32', r.data),
    backend.makeTensorInfo([rows], 'float32', r.saveMean),
    backend.makeTensorInfo([rows], 'float32', r.saveInvstd),
  ];
}

function backward(args: KernelArgs): TensorInfo[] {
  const backend = asCpuBackend(args.backend, LayerNormRowsGrad);
  const { inputs, attrs = {} } = args;
  const x = inputs.x!,
    dy = inputs.dy!;
  if (dy.shape.length !== x.shape.length || dy.shape.some((v, i) => v !== x.shape[i]))
    throw new RangeError(`${LayerNormRowsGrad}: expected dy of x's shape [${x.shape.join(', ')}] but received shape [${dy.shape.join(', ')}]`);
  const { rows, d } = rowsOf(x, attrs.normalizedSize, LayerNormRowsGrad);
  const shape = [rows, d];
  const data = valuesOf(backend, x, 'x', LayerNormRowsGrad),
    dyData = valuesOf(backend, dy, 'dy', LayerNormRowsGrad);
  const weight = parameter(backend, inputs, 'scale', d, LayerNormRowsGrad);
  const saveMean = perRow(backend, inputs, 'mean', rows, LayerNormRowsGrad),
    saveInvstd = perRow(backend, inputs, 'invstd', rows, LayerNormRowsGrad);
  const g = layerNormBackward({ data: dyData, shape }, { data, shape }, [d], { weight, saveMean, saveInvstd });
  return [
    backend.makeTensorInfo([...x.shape], 'float32', g.gradInput.data),
    backend.makeTensorInfo([d], 'float32', g.gradWeight!),
    backend.makeTensorInfo([d], 'float32', g.gradBias!),
  ];
}

/** The two kernel configs for one backend. */
export function layerNormKernelConfigs(backendName: string): KernelConfig[] {
  return [
    { kernelName: LayerNormRows, backendName, kernelFunc: forward as KernelConfig['kernelFunc'] },
    { kernelName: LayerNormRowsGrad, backendName, kernelFunc: backward as KernelConfig['kernelFunc'] },
  ];
}

/** Whether these kernels are registered on the named backend (the layer asks before using them). */
export function layerNormInstalledOn(backendName: string): boolean {
  return getKernel(LayerNormRows, backendName) != null;
}
