/**
 * Where plugin code runs: the one place that picks the {@link PluginHostFactory} the runtime uses
 * (the controller and `iocmng validate`). Today a Bun Worker in this process.
 */
import type { PluginHostFactory } from "./host.ts";
import { startWorkerHost } from "./worker-host.ts";

/** The host factory used unless a caller passes its own. */
export const defaultHostFactory: PluginHostFactory = startWorkerHost;
