/**
 * Time limits and per-PV ordering of the plugin runtime's awaited calls (src/plugins/worker.ts).
 */

/** `p`, or a rejection naming `what` once `ms` have passed. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Per PV: settles once the latest write to it was answered (see {@link chainWrite}). */
const writeTails = new Map<string, Promise<void>>();

/**
 * Runs `run` (the plugin's onPvWrite) after the previous write to the same PV was answered, so a
 * plugin sees one write per PV at a time even though the CA server sends overlapping writes;
 * different PVs still run concurrently. The limit counts from arrival, waiting included (the
 * server stops waiting for the answer after it): a write whose time is up before its turn is
 * refused without calling the handler. A handler past its limit no longer holds the PV — the
 * write was already refused, and one hung handler must not refuse every later write.
 */
export function chainWrite(pv: string, timeoutMs: number, run: () => unknown): Promise<void> {
  const prev = writeTails.get(pv);
  let expired = false;
  const call = (): Promise<unknown> => {
    if (expired) return Promise.resolve();
    try {
      return Promise.resolve(run());
    } catch (e) {
      return Promise.reject(e);
    }
  };
  // No write pending on this PV: the handler starts in this turn, as it always did.
  const handled = prev ? prev.then(call) : call();
  const answered = withTimeout(handled, timeoutMs, `onPvWrite("${pv}")`);
  const tail = answered.then(
    () => {},
    () => {
      expired = true;
    },
  );
  writeTails.set(pv, tail);
  void tail.then(() => {
    if (writeTails.get(pv) === tail) writeTails.delete(pv);
  });
  return answered.then(() => {});
}
