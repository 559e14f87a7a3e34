/**
 * The Channel Access side of a declarative plugin's links: the connectivity check at start,
 * monitors (`link_mode: monitor`), polls (`poll`, at most every `poll_rate` s), reconnect probes of
 * disconnected links (at most every `retry_interval` s) and puts to wired outputs and actuators.
 * Every subscription is this plugin's own (2.7.9 kept them in one process-wide table keyed by PV
 * name, so two plugins with a port of the same name replaced each other's monitor).
 */
import type { PluginCaClient } from "../sdk/host.ts";
import { convert, type Engine, type PortState } from "./engine.ts";
import type { PortValue } from "./spec.ts";

export interface LinkOptions {
  /** Seconds for gets and puts (`parameters.timeout`). */
  timeout: number;
  /** Minimum seconds between reconnect probes of one link. */
  retryInterval: number;
  /** A `trigger: true` port's value changed. */
  onTrigger(name: string, value: PortValue, old: PortValue): void;
  log(level: "debug" | "info" | "warn" | "error", msg: string): void;
}

/** Whether a reading equals the port's current value once converted to the port's type. */
function convertSame(st: PortState, raw: unknown): boolean {
  try {
    return convert(st.spec, raw) === st.value;
  } catch {
    return false;
  }
}

/** Longest a reconnect probe waits (seconds), so probes never hold a cycle for long. */
const PROBE_TIMEOUT = 2;

export class Links {
  private readonly monitors = new Map<string, { close(): void }>();
  private readonly connWatch = new Map<string, () => void>();
  private readonly lastPoll = new Map<string, number>();
  private readonly lastProbe = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly engine: Engine,
    private readonly ca: () => PluginCaClient,
    private readonly opts: LinkOptions,
  ) {}

  private linkOf(name: string): string {
    return this.engine.ports.get(name)?.spec.link as string;
  }

  /** A value arrived from a link. */
  private onValue(name: string, raw: unknown, seed = false): void {
    if (this.closed) return;
    const changed = this.engine.linkValue(name, raw);
    const st = this.engine.ports.get(name);
    // Seeding from the connectivity check replaces the config value: not a change to react to.
    if (changed && st?.spec.trigger && !seed) this.opts.onTrigger(name, st.value, changed.old);
  }

  private async read(name: string, timeout: number, seed = false): Promise<boolean> {
    try {
      const r = await this.ca().get(this.linkOf(name), { timeout, as: "value" });
      this.onValue(name, r.value, seed);
      return true;
    } catch (e) {
      if (!this.closed) {
        const st = this.engine.ports.get(name);
        if (st?.connected)
          this.opts.log("warn", `link ${st.spec.link} of ${name} lost: ${(e as Error).message}`);
        this.engine.setConnected(name, false);
      }
      return false;
    }
  }

  /** One get per wired input (in parallel); publishes CONN_* and forced alarms. */
  async initialCheck(): Promise<void> {
    await Promise.all(
      this.engine.wiredInputs.map((s) => this.read(s.spec.name, this.opts.timeout, true)),
    );
    this.engine.publishConnections();
    this.engine.updateForced();
  }

  /** Subscribes every wired port with `link_mode: monitor` (inputs and outputs). */
  openMonitors(): void {
    for (const st of [...this.engine.wiredInputs, ...this.engine.wiredOutputs]) {
      const name = st.spec.name;
      if (st.spec.linkMode !== "monitor" || this.monitors.has(name)) continue;
      const link = st.spec.link as string;
      try {
        let first = true;
        const m = this.ca().monitor(link, {
          as: "value",
          onUpdate: (r) => {
            // A subscription starts with the current value; when the connectivity check already
            // read that very value it is not a new sample (it would count twice in the buffer).
            const skip = first && st.connected && convertSame(st, r.value);
            first = false;
            if (!skip) this.onValue(name, r.value);
          },
        });
        this.monitors.set(name, m);
        // Values come with monitor updates; a lost connection has to be watched separately.
        this.connWatch.set(
          name,
          this.ca().onConnection(link, (up) => {
            if (!up && !this.closed) this.engine.setConnected(name, false);
          }),
        );
      } catch (e) {
        this.opts.log("error", `cannot monitor ${link} for ${name}: ${(e as Error).message}`);
      }
    }
  }

  /** Closes every monitor (ENABLE=0); openMonitors() reopens them. */
  closeMonitors(): void {
    for (const m of this.monitors.values()) m.close();
    for (const u of this.connWatch.values()) u();
    this.monitors.clear();
    this.connWatch.clear();
  }

  /** Reads every connected `poll` link whose `poll_rate` has elapsed (in parallel). */
  async poll(now = performance.now()): Promise<void> {
    const due = [...this.engine.wiredInputs, ...this.engine.wiredOutputs].filter((st) => {
      if (st.spec.linkMode !== "poll" || !st.connected) return false;
      const rate = st.spec.pollRate;
      const last = this.lastPoll.get(st.spec.name);
      return rate === undefined || last === undefined || now - last >= rate * 1000;
    });
    for (const st of due) this.lastPoll.set(st.spec.name, now);
    await Promise.all(due.map((st) => this.read(st.spec.name, this.opts.timeout)));
  }

  /** Probes disconnected links, each at most every `retry_interval` s unless `force`. */
  async probe(force = false, now = performance.now()): Promise<void> {
    const due = this.engine.disconnected().filter((st) => {
      const last = this.lastProbe.get(st.spec.name);
      return force || last === undefined || now - last >= this.opts.retryInterval * 1000;
    });
    for (const st of due) this.lastProbe.set(st.spec.name, now);
    const timeout = Math.min(this.opts.timeout, PROBE_TIMEOUT);
    await Promise.all(due.map((st) => this.read(st.spec.name, timeout)));
  }

  /** Writes a port's link; failures are logged, never thrown (a down IOC must not stop rules). */
  put(name: string, value: PortValue): void {
    const link = this.linkOf(name);
    if (!link || this.closed) return;
    this.ca()
      .put(link, value, { timeout: this.opts.timeout })
      .catch((e: unknown) =>
        this.opts.log("warn", `put ${link} = ${value} for ${name} failed: ${(e as Error).message}`),
      );
  }

  close(): void {
    this.closed = true;
    this.closeMonitors();
  }
}
