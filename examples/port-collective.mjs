// A Collective over MessagePorts: the recipe for any transport that can send
// a message from one rank to another (sockets, WebSockets, a message queue).
// allGather: send your array to every other rank with a sequence number,
// collect theirs, concatenate in rank order; allReduceSum: gather and add in
// rank order, so that every rank gets identical bits.
import { MessageChannel } from 'node:worker_threads';
import { sumInRankOrder } from 'batchnorm';

export class PortCollective {
  #ports;
  #sequence = 0;
  #inbox = new Map(); // `${from}:${sequence}` -> the data, or the resolver of a pending receive

  /** ports[r]: a MessagePort to rank r (null at this rank's own index). */
  constructor(rank, ports) {
    this.rank = rank;
    this.worldSize = ports.length;
    this.#ports = ports;
    ports.forEach((port, from) => port?.on('message', ({ sequence, data }) => this.#deliver(`${from}:${sequence}`, data)));
  }

  async allGather(data) {
    const sequence = this.#sequence++;
    for (const port of this.#ports) port?.postMessage({ sequence, data });
    const parts = await Promise.all(this.#ports.map((port, from) => (port ? this.#receive(`${from}:${sequence}`) : data)));
    const lengths = parts.map((p) => p.length);
    if (lengths.some((n) => n !== data.length))
      throw new RangeError(`Expected every rank to pass the same length to allGather, but the ranks passed ${lengths.join(', ')}`);
    const out = new Float64Array(this.worldSize * data.length);
    parts.forEach((part, r) => out.set(part, r * data.length));
    return out;
  }

  async allReduceSum(data) {
    return sumInRankOrder(await this.allGather(data), this.worldSize);
  }

  /** Closes this rank's ports (they keep the event loop alive while open). */
  close() {
    for (const port of this.#ports) port?.close();
  }

  #deliver(key, data) {
    const waiting = this.#inbox.get(key);
    if (typeof waiting === 'function') {
      this.#inbox.delete(key);
      waiting(data);
    } else this.#inbox.set(key, data);
  }

  #receive(key) {
    const data = this.#inbox.get(key);
    if (data !== undefined) {
      this.#inbox.delete(key);
      return Promise.resolve(data);
    }
    return new Promise((resolve) => this.#inbox.set(key, resolve));
  }
}

/** ports[r][q]: rank r's port to rank q, for n ranks (pass each rank its row; transfer them to workers). */
export function portMesh(n) {
  const ports = Array.from({ length: n }, () => Array(n).fill(null));
  for (let r = 0; r < n; r++)
    for (let q = r + 1; q < n; q++) {
      const { port1, port2 } = new MessageChannel();
      ports[r][q] = port1;
      ports[q][r] = port2;
    }
  return ports;
}
