/**
 * The search Worker's entry (started by SearchWorker, search-worker.ts): for each "attach" it
 * loads the protocol's session module and hands it its port. The protocols' modules are loaded by
 * URL, not imported, so this file knows neither CA nor PVA (docs/architecture.md); inside the
 * binary they are entrypoints of their own (scripts/build.ts), found by the same URL.
 */

import type { FromSearchThread } from "./search-thread-host.ts";
import type { AttachMessage } from "./search-worker.ts";

declare const self: Worker;

/** What a protocol's session module exports. */
interface SessionModule {
  attachSearchSession?: (port: MessagePort) => void;
}

self.onmessage = (e: MessageEvent<AttachMessage>) => {
  const { module, port } = e.data;
  // Messages the main thread posts meanwhile wait in the port until the session listens.
  import(module)
    .then((m: SessionModule) => {
      if (typeof m.attachSearchSession !== "function")
        throw new Error(`${module} exports no attachSearchSession`);
      m.attachSearchSession(port);
    })
    .catch((err: unknown) => {
      const failed: FromSearchThread = { t: "loadError", message: `${module}: ${String(err)}` };
      port.postMessage(failed);
    });
};
