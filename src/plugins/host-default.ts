/**
 * Where plugin code runs: the one place that picks the {@link PluginHostFactory} the runtime uses
 * (the controller and `iocmng validate`): a sandboxed OS process per plugin (host/process-host.ts).
 */

import { startProcessHost } from "./host/process-host.ts";
import type { PluginHostFactory } from "./host.ts";

/** The host factory used unless a caller passes its own. */
export const defaultHostFactory: PluginHostFactory = startProcessHost;
