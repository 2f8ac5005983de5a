import type { MessagePort } from 'node:worker_threads';
import type { Collective } from 'batchnorm';

export class PortCollective implements Collective {
  constructor(rank: number, ports: Array<MessagePort | null>);
  readonly rank: number;
  readonly worldSize: number;
  allGather(data: Float64Array): Promise<Float64Array>;
  allReduceSum(data: Float64Array): Promise<Float64Array>;
  close(): void;
}

export function portMesh(n: number): Array<Array<MessagePort | null>>;
