import { asAsyncCall } from './validate.js';

/**
 * Async forms on the JS path run on the calling thread, after the current turn
 * of the event loop, with the same checks as the native async forms.
 */
export function deferred<A extends unknown[]>(f: (...args: A) => void): (...args: A) => Promise<void> {
  return (...args: A) => new Promise<void>((resolve, reject) => {
    setImmediate(() => {
      try {
        asAsyncCall(() => f(...args));
        resolve();
      } catch (e) {
        reject(e);
      }
    });
  });
}
