/**
 * Worker side of scripts/bench/client-worker.ts: monitors one PV with the ffi client in this
 * Worker (as a plugin's `this.ca` does) and reports, per update, the value and the absolute time
 * (performance.timeOrigin + now(), comparable across threads) at which onUpdate ran.
 */
import { caClient } from "../../ffi/index.ts";

declare const self: Worker;

self.onmessage = async (ev: MessageEvent) => {
  const { env, pv } = ev.data as { env: Record<string, string>; pv: string };
  Object.assign(process.env, env);
  const ca = caClient();
  await ca.get(pv, { timeout: 10 });
  ca.monitor(pv, {
    as: "value",
    onUpdate: (r) =>
      self.postMessage({ v: r.value, at: performance.timeOrigin + performance.now() }),
  });
};
