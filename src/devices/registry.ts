/**
 * Builds device objects from the beamline values file (`IOCMNG_BEAMLINE_CONFIG`, section
 * `epicsConfiguration.iocs`) the way infn-ophyd-hal's DeviceFactory does:
 *  - an IOC with `disable: true` or without `devgroup` is skipped;
 *  - each entry of its `devices` list becomes a device with PV prefix
 *    `{iocprefix}:{iocroot}:{device}` (or `{iocprefix}:{device}` without `iocroot`);
 *  - an IOC without `devices` is itself one device with prefix `{iocprefix}`;
 *  - a name already taken becomes `{ioc}_{device}`.
 * `iocprefix` in real values files already carries the beamline (e.g. "SPARC:LLRF1"), so the
 * top-level `beamline`/`namespace` keys are not prepended; pass opts.beamline/namespace to do so.
 * A malformed file is refused with an error naming the offending field; nothing is half-built.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import type { CaClient } from "../../ffi/index.ts";
import { isPlainObject } from "../common/object.ts";
import { deviceType } from "./catalog.ts";
import { Device, type DeviceInfo, MotorDevice } from "./device.ts";

/** Thrown when the values file cannot be used; the message names the field. */
export class DeviceConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceConfigError";
  }
}

/** Options of DeviceRegistry.fromValues. */
export interface DeviceRegistryOptions {
  /** Prepended to every prefix when set (only if your iocprefix values lack it). */
  beamline?: string;
  /** Prepended after the beamline when set. */
  namespace?: string;
}

const SEGMENT_RE = /^[\x21-\x7e]+$/;

function optString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return String(v);
  if (typeof v !== "string") {
    throw new DeviceConfigError(`${where}.${key}: expected a string, got ${typeof v}`);
  }
  return v;
}

function segment(v: string, where: string): string {
  if (!SEGMENT_RE.test(v)) {
    throw new DeviceConfigError(
      `${where}: ${JSON.stringify(v)} is not usable in a PV name (printable ASCII, no spaces)`,
    );
  }
  return v;
}

/** A device to build: what it is and its type. */
type DeviceEntry = { info: DeviceInfo; spec: ReturnType<typeof deviceType> };

/**
 * The devices of one IOC entry of the values file (`where` names it in errors): one per entry of
 * its `devices` list, or the IOC itself when it has none; none when it is disabled or has no
 * `devgroup`. `head` is the beamline/namespace prefix.
 */
function iocDevices(ioc: unknown, where: string, head: string[]): DeviceEntry[] {
  if (!isPlainObject(ioc)) throw new DeviceConfigError(`${where}: expected a mapping`);
  const iocName = optString(ioc, "name", where);
  if (!iocName) throw new DeviceConfigError(`${where}.name: required`);
  const at = `${where} (${iocName})`;
  const disable = ioc.disable;
  if (disable !== undefined && typeof disable !== "boolean") {
    throw new DeviceConfigError(`${at}.disable: expected true or false`);
  }
  const devgroup = optString(ioc, "devgroup", at);
  const devtype = optString(ioc, "devtype", at);
  const iocprefix = optString(ioc, "iocprefix", at);
  const iocroot = optString(ioc, "iocroot", at);
  const list = ioc.devices;
  if (list !== undefined && list !== null && !Array.isArray(list)) {
    throw new DeviceConfigError(`${at}.devices: expected a list`);
  }
  if (disable === true || !devgroup) return [];
  if (!iocprefix) {
    throw new DeviceConfigError(`${at}.iocprefix: required for devgroup ${devgroup}`);
  }
  const base = [...head, segment(iocprefix, `${at}.iocprefix`)];
  if (iocroot) base.push(segment(iocroot, `${at}.iocroot`));
  const { devices: _devices, ...iocConfig } = ioc;
  if (!list || list.length === 0) {
    const info: DeviceInfo = {
      name: iocName,
      iocName,
      devgroup,
      devtype,
      prefix: [...head, iocprefix].join(":"),
      config: { ...iocConfig },
    };
    return [{ info, spec: deviceType(devgroup, devtype) }];
  }
  return (list as unknown[]).map((dev, j) => {
    const dw = `${at}.devices[${j}]`;
    if (!isPlainObject(dev)) throw new DeviceConfigError(`${dw}: expected a mapping`);
    const devName = optString(dev, "name", dw);
    if (!devName) throw new DeviceConfigError(`${dw}.name: required`);
    // A device may override the IOC's devtype, as in infn-ophyd-hal.
    const type = optString(dev, "devtype", dw) ?? devtype;
    const info: DeviceInfo = {
      name: devName,
      iocName,
      devgroup,
      devtype: type,
      prefix: [...base, segment(devName, `${dw}.name`)].join(":"),
      config: { ...iocConfig, iocname: iocName, ...dev },
    };
    return { info, spec: deviceType(devgroup, type) };
  });
}

/** The devices of a beamline, by name. */
export class DeviceRegistry {
  private readonly devices = new Map<string, Device>();

  /** An empty registry (devices disabled, or no values file). */
  static empty(): DeviceRegistry {
    return new DeviceRegistry();
  }

  /**
   * Builds the registry from a parsed values file. `client` is called lazily, on the first CA
   * access of a device, so building devices never loads libca.
   */
  static fromValues(
    values: Record<string, unknown>,
    client: () => CaClient,
    opts: DeviceRegistryOptions = {},
  ): DeviceRegistry {
    if (!isPlainObject(values))
      throw new DeviceConfigError("values file: expected a mapping at the top level");
    const reg = new DeviceRegistry();
    const epics = values.epicsConfiguration;
    if (epics === undefined || epics === null) return reg;
    if (!isPlainObject(epics))
      throw new DeviceConfigError("epicsConfiguration: expected a mapping");
    const iocs = epics.iocs;
    if (iocs === undefined || iocs === null) return reg;
    if (!Array.isArray(iocs))
      throw new DeviceConfigError("epicsConfiguration.iocs: expected a list");
    const head = [opts.beamline, opts.namespace]
      .filter((s): s is string => typeof s === "string" && s !== "")
      .map((s, i) => segment(s, i === 0 && opts.beamline ? "beamline" : "namespace"));
    // Validate and collect everything first, so a bad entry anywhere leaves nothing half-built.
    const infos = iocs.flatMap((ioc, i) => iocDevices(ioc, `epicsConfiguration.iocs[${i}]`, head));
    for (const { info, spec } of infos) {
      if (reg.devices.has(info.name)) info.name = `${info.iocName}_${info.name}`;
      if (reg.devices.has(info.name)) {
        throw new DeviceConfigError(
          `device name clash: "${info.name}" (IOC ${info.iocName}) is already taken`,
        );
      }
      const d =
        spec.kind === "generic"
          ? new Device(info, spec, client)
          : new MotorDevice(info, spec, client);
      reg.devices.set(info.name, d);
    }
    return reg;
  }

  /** Reads and parses a YAML values file, then builds the registry; errors name file and field. */
  static fromFile(
    path: string,
    client: () => CaClient,
    opts: DeviceRegistryOptions = {},
  ): DeviceRegistry {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new DeviceConfigError(`cannot read values file ${path}: ${(e as Error).message}`);
    }
    let values: unknown;
    try {
      values = parse(text);
    } catch (e) {
      throw new DeviceConfigError(`values file ${path} is not valid YAML: ${(e as Error).message}`);
    }
    if (!isPlainObject(values)) {
      throw new DeviceConfigError(`values file ${path}: expected a mapping at the top level`);
    }
    return DeviceRegistry.fromValues(values, client, opts);
  }

  /** The device with that name, if any. */
  getDevice(name: string): Device | undefined {
    return this.devices.get(name);
  }

  /** Names of every device, in values-file order. */
  listDevices(): string[] {
    return [...this.devices.keys()];
  }

  /** Devices whose IOC has this devgroup (e.g. "mot", "diag", "mag", "io", "vac"). */
  getDevicesByType(devgroup: string): Device[] {
    return [...this.devices.values()].filter((d) => d.devgroup === devgroup);
  }

  /** Number of devices. */
  get size(): number {
    return this.devices.size;
  }
}

/**
 * Whether the device layer is on: off unless IOCMNG_DISABLE_DEVICES / IOCMNG_DISABLE_OPHYD is
 * set to a false value (the seed's default is IOCMNG_DISABLE_OPHYD=true). IOCMNG_DISABLE_DEVICES
 * wins when both are set.
 */
export function devicesEnabled(env: Record<string, string | undefined> = process.env): boolean {
  const raw = env.IOCMNG_DISABLE_DEVICES ?? env.IOCMNG_DISABLE_OPHYD;
  if (raw === undefined || raw.trim() === "") return false;
  return ["false", "0", "no", "off"].includes(raw.trim().toLowerCase()) === true;
}
