/**
 * How the pure-JS kernels run as the Kernels interface's sync and async
 * forms; each kernel takes `async` first, for its argument reader.
 */
/** The sync form: checks as a call that ends in this turn. */
export function sync<A extends unknown[]>(f: (async: boolean, ...args: A) => void): (...args: A) => void {
  return (...args: A) => f(false, ...args);
}

/**
 * Async forms on the JS path run on the calling thread, after the current turn
 * of the event loop, with the same checks as the native async forms.
 */
export function deferred<A extends unknown[]>(f: (async: boolean, ...args: A) => void): (...args: A) => Promise<void> {
  return (...args: A) => new Promise<void>((resolve, reject) => {
    setImmediate(() => {
      try {
        f(true, ...args);
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
}
