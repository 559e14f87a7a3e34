/**
 * What src/server.ts adds for 2.7.9 sites, in one place: the checked IOCMNG_* variables, the
 * routes' adapter, the /pvs proxy's CA client, the device list, and loading the boot list
 * (IOCMNG_PLUGINS_CONFIG) after the persisted plugins are restored.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { caClient } from "../../ffi/index.ts";
import type { CompatAddRequest } from "../api/compat.ts";
import type { ProxyCaClient } from "../api/pvs-proxy.ts";
import type { ServerConfig } from "../config.ts";
import { DeviceRegistry } from "../devices/index.ts";
import type { PluginController } from "../plugins/controller.ts";
import { CompatAdapter } from "./adapter.ts";
import { type BootEntry, orderBootList, parseBootList } from "./boot-list.ts";
import { type CompatEnv, readCompatEnv } from "./env.ts";

export interface CompatWiring {
  env: CompatEnv;
  adapter: CompatAdapter;
  pvProxy: { ca(): ProxyCaClient };
  /** Loads the boot list's plugins that are not loaded yet, in boot order. Never throws. */
  loadBootList(): Promise<void>;
}

/** Checks the 2.7.9 variables (throws one error naming every refused one) and builds the parts. */
export function compatWiring(
  config: ServerConfig,
  controller: PluginController,
  env: Record<string, string | undefined>,
  logger: Logger,
): CompatWiring {
  const compatEnv = readCompatEnv(env);
  for (const w of compatEnv.warnings) logger.warn(w);
  let devices: string[] | null = null;
  const adapter = new CompatAdapter({
    controller,
    pluginsDir: config.pluginsDir,
    localPathRoots: compatEnv.localPathRoots,
    devices: () => {
      if (devices === null) {
        const values = config.beamlineValues;
        devices =
          config.disableDevices || values === null
            ? []
            : DeviceRegistry.fromValues(values, () => caClient()).listDevices();
      }
      // Devices are created inside each plugin's own runtime; the server does not see them.
      return { available: devices, created: [] };
    },
  });
  return {
    env: compatEnv,
    adapter,
    pvProxy: { ca: () => caClient() as unknown as ProxyCaClient },
    loadBootList: () => loadBootList(compatEnv.pluginsConfig, adapter, controller, logger),
  };
}

function request(e: BootEntry): CompatAddRequest {
  return {
    name: e.name,
    ...(e.git_url ? { git_url: e.git_url } : {}),
    ...(e.local_path ? { local_path: e.local_path } : {}),
    path: e.path,
    branch: e.branch,
    ...(e.pat_env ? { pat_env: e.pat_env } : {}),
    auto_start: e.auto_start,
    auto_start_on_boot: e.auto_start_on_boot,
    autostart_order: e.autostart_order,
    parameters: e.parameters,
  };
}

async function loadBootList(
  file: string | null,
  adapter: CompatAdapter,
  controller: PluginController,
  logger: Logger,
): Promise<void> {
  if (file === null) return;
  const log = logger.child({ component: "boot-list", file });
  let entries: BootEntry[];
  try {
    entries = orderBootList(parseBootList(await readFile(file, "utf8"), file));
  } catch (e) {
    // 2.7.9 treats a missing file as empty; a malformed one is worth an error but not a crash.
    if ((e as NodeJS.ErrnoException).code === "ENOENT")
      log.warn("IOCMNG_PLUGINS_CONFIG file not found: no boot list");
    else log.error({ err: e }, `boot list refused: ${(e as Error).message}`);
    return;
  }
  const loaded = new Set(controller.loadedPlugins().map((p) => p.name.toLowerCase()));
  // One after another, in order: the order is the point of autostart_order.
  for (const e of entries) {
    if (loaded.has(e.name.toLowerCase())) {
      log.info({ plugin: e.name }, "already restored from state; boot list entry skipped");
      continue;
    }
    const r = await adapter.add(request(e), e.kind ?? "auto");
    if (r.ok) log.info({ plugin: e.name, order: e.autostart_order }, `boot list: ${e.name} loaded`);
    else
      log.error(
        { plugin: e.name, errors: r.validation?.errors },
        `boot list: ${e.name} not loaded: ${r.message}`,
      );
  }
}
