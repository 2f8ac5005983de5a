/**
 * Module hooks, as PyTorch's `register_forward_hook` and
 * `register_full_backward_hook`: functions a module calls after each forward
 * (module, input, output) and each backward (module, gradInput, gradOutput),
 * in the order they were registered. A module without hooks holds no list
 * (null): a call then costs one null check.
 */
import { typeError } from './check.js';
import type { Tensor } from './tensor.js';

/** What a register call returns: `remove()` unregisters the function (again: nothing). */
export interface RemovableHandle {
  remove(): void;
}

/** Called after a forward succeeded: its input and its output (the object forward returns). */
export type ForwardHook<M> = (module: M, input: Tensor, output: Tensor) => void;
/** Called after a backward succeeded: the input's gradient (dx) and the output's (dy). */
export type BackwardHook<M> = (module: M, gradInput: Tensor, gradOutput: Tensor) => void;

/** The hooks of one kind on one module. */
export class HookList<M> {
  #fns: Array<(module: M, a: Tensor, b: Tensor) => void> = [];

  /** Registers fn; returns its handle. */
  add(fn: unknown, what: string): RemovableHandle {
    if (typeof fn !== 'function') throw typeError(what, 'a function', fn);
    // One wrapper per registration, so the same function twice is two hooks, each removed once.
    const entry = (m: M, a: Tensor, b: Tensor) => (fn as (m: M, a: Tensor, b: Tensor) => void)(m, a, b);
    this.#fns.push(entry);
    return {
      remove: () => {
        const i = this.#fns.indexOf(entry);
        if (i >= 0) this.#fns.splice(i, 1);
      },
    };
  }

  get size(): number {
    return this.#fns.length;
  }

  /** Calls each hook (a copy of the list: a hook may remove itself). A hook that throws stops the rest, and the caller gets its error. */
  call(module: M, a: Tensor, b: Tensor): void {
    for (const fn of this.#fns.slice()) fn(module, a, b);
  }
}
