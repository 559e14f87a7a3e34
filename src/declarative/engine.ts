/**
 * The evaluation side of a declarative plugin: the state of every declared PV (latest value,
 * connection, ring buffer), transforms, rules with `rule_defaults`, latches with CLEAR, the
 * connection summary PVs (CONN_INP/CONN_OUT, SYS_CONN) and the forced alarms of outputs that
 * depend on a disconnected input. It knows nothing of Channel Access: links.ts feeds it link values
 * and connection changes, and it writes through the small `EngineIo` interface, so it is testable
 * on its own and runs unchanged in a Worker or a process.
 *
 * Upstream bugs not copied (docs/compat-2.7.9.md, "Better than 2.7.9"): rules see transform outputs and unwired
 * inputs; a forced alarm is severity MAJOR (upstream swapped the arguments and raised 4/WRITE).
 */
import {
  type CompiledExpr,
  compileExpr,
  ExprError,
  str,
  truthy,
  type Value,
} from "../expr/index.ts";
import type { DeclarativeSpec, PortSpec, PortValue, RuleSpec } from "./spec.ts";

/** EPICS severity MAJOR and status LINK: the alarm of an output whose input link is down. */
export const FORCED_ALARM = { severity: 2, status: 14 } as const;
/** Longest string a string PV holds (characters, as 2.7.9 truncates). */
const MAX_STR = 39;

/** What the engine needs from its host. */
export interface EngineIo {
  /** Sets a local PV (optionally with an explicit alarm). */
  setLocal(
    name: string,
    value: PortValue | number[],
    alarm?: { severity: number; status: number },
  ): void;
  /** Current value of a local PV (for unwired inputs written by operators). */
  getLocal(name: string): unknown;
  /** Writes the external PV of a wired port (fire and forget; failures are logged by the caller). */
  putLink(name: string, value: PortValue): void;
  log(level: "debug" | "info" | "warn" | "error", msg: string): void;
}

/** A fixed-size ring buffer of numbers (2.7.9's `deque(maxlen=n)`). */
class Ring {
  private readonly data: number[] = [];
  private start = 0;
  constructor(private readonly size: number) {}
  push(v: number): void {
    if (this.data.length < this.size) this.data.push(v);
    else {
      this.data[this.start] = v;
      this.start = (this.start + 1) % this.size;
    }
  }
  toArray(): number[] {
    return this.start === 0
      ? [...this.data]
      : [...this.data.slice(this.start), ...this.data.slice(0, this.start)];
  }
  clear(): void {
    this.data.length = 0;
    this.start = 0;
  }
}

/** Runtime state of one declared PV. */
export interface PortState {
  spec: PortSpec;
  value: PortValue;
  /** Wired ports only: whether the external PV answered last time. */
  connected: boolean;
  buf: Ring | null;
  /** Disconnected inputs this output's expressions name (forced alarm while non-empty). */
  forced: boolean;
}

interface CompiledRule {
  spec: RuleSpec;
  cond: CompiledExpr;
  lastError: string;
  firing: boolean;
}

/** Converts an expression result or a link value to what a PV of `type` holds. */
export function convert(port: PortSpec, v: unknown): PortValue {
  if (port.type === "string") {
    const s = typeof v === "string" ? v : str(v as Value);
    return s.length > MAX_STR ? s.slice(0, MAX_STR) : s;
  }
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "boolean") n = v ? 1 : 0;
  else if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) n = Number(v);
  else if (
    v !== null &&
    typeof v === "object" &&
    "length" in v &&
    (v as ArrayLike<number>).length > 0
  ) {
    n = Number((v as ArrayLike<number>)[0]);
  } else if (port.type === "bool") n = truthy(v as Value) ? 1 : 0;
  else throw new Error(`cannot store ${JSON.stringify(v)} in ${port.type} PV ${port.name}`);
  if (port.type === "bool") return n ? 1 : 0;
  if (port.type === "int") return Number.isFinite(n) ? Math.trunc(n) : 0;
  return n;
}

function latchFires(dir: PortSpec["latchDir"], v: PortValue): boolean {
  if (dir === "any") return true;
  return dir === "rise" ? truthy(v) : !truthy(v);
}

/** `dd/mm/yy HH:MM:SS`, local time, as 2.7.9 prefixes rule messages. */
export function ruleStamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getDate())}/${p(d.getMonth() + 1)}/${p(d.getFullYear() % 100)} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export class Engine {
  readonly ports = new Map<string, PortState>();
  readonly latched = new Set<string>();
  readonly inhibited = new Set<string>();
  private readonly transforms: { output: string; expr: CompiledExpr; lastError: string }[];
  private readonly rules: CompiledRule[];
  private readonly ruleDefaults: Map<string, PortValue>;
  /** output → wired inputs its expressions name. */
  private readonly deps = new Map<string, Set<string>>();
  private readonly wiredIn: PortState[];
  private readonly wiredOut: PortState[];
  /** Evaluations done; errors seen (for tests and diagnostics). */
  evaluations = 0;
  errors = 0;

  constructor(
    readonly spec: DeclarativeSpec,
    private readonly io: EngineIo,
    private readonly parameters: Readonly<Record<string, unknown>>,
  ) {
    for (const p of spec.ports) {
      this.ports.set(p.name, {
        spec: p,
        value: p.initial,
        connected: false,
        buf: p.bufferSize > 0 ? new Ring(p.bufferSize) : null,
        forced: false,
      });
    }
    this.transforms = spec.transforms.map((t) => ({
      output: t.output,
      expr: compileExpr(t.expression, { where: `Transform ${t.output}` }),
      lastError: "",
    }));
    this.rules = spec.rules.map((r) => ({
      spec: r,
      cond: compileExpr(r.condition, { where: `Rule ${r.id} condition` }),
      lastError: "",
      firing: false,
    }));
    this.ruleDefaults = new Map(spec.ruleDefaults);
    const wired = [...this.ports.values()].filter((s) => s.spec.link !== undefined);
    this.wiredIn = wired.filter((s) => s.spec.direction === "input");
    this.wiredOut = wired.filter((s) => s.spec.direction === "output");
    const inputsOf = (e: CompiledExpr) =>
      [...e.names].filter(
        (n) =>
          this.ports.get(n)?.spec.link !== undefined &&
          this.ports.get(n)?.spec.direction === "input",
      );
    const addDeps = (out: string, names: string[]) => {
      const set = this.deps.get(out) ?? new Set<string>();
      for (const n of names) set.add(n);
      this.deps.set(out, set);
    };
    for (const t of this.transforms) addDeps(t.output, inputsOf(t.expr));
    for (const r of this.rules) {
      const names = inputsOf(r.cond);
      for (const [o] of r.spec.outputs) addDeps(o, names);
      if (r.spec.messagePv) addDeps(r.spec.messagePv, names);
    }
  }

  /** Wired inputs, in declaration order. */
  get wiredInputs(): readonly PortState[] {
    return this.wiredIn;
  }
  /** Wired outputs, in declaration order. */
  get wiredOutputs(): readonly PortState[] {
    return this.wiredOut;
  }

  /**
   * A value read from a port's link (initial check, poll, monitor, probe): stored, buffered,
   * mirrored into the local PV. Returns the previous value when it changed, else undefined.
   */
  linkValue(name: string, raw: unknown): { old: PortValue } | undefined {
    const st = this.ports.get(name);
    if (!st) return undefined;
    let v: PortValue;
    try {
      v = convert(st.spec, raw);
    } catch (e) {
      this.io.log("warn", `link ${st.spec.link} of ${name}: ${(e as Error).message}`);
      return undefined;
    }
    const old = st.value;
    st.value = v;
    if (st.buf)
      st.buf.push(typeof v === "number" ? v : Number.isFinite(Number(v)) ? Number(v) : Number.NaN);
    this.io.setLocal(name, v, st.forced ? FORCED_ALARM : undefined);
    if (!st.connected) this.setConnected(name, true);
    return old !== v ? { old } : undefined;
  }

  /** A link's connection changed: CONN arrays, SYS_CONN and forced alarms follow. */
  setConnected(name: string, up: boolean): void {
    const st = this.ports.get(name);
    if (!st || st.spec.link === undefined || st.connected === up) return;
    st.connected = up;
    this.publishConnections();
    this.updateForced();
  }

  /** Raises or clears the forced alarm of every output naming a disconnected input. */
  updateForced(): void {
    for (const [out, inputs] of this.deps) {
      const os = this.ports.get(out);
      if (!os) continue;
      const forced = [...inputs].some((i) => this.ports.get(i)?.connected === false);
      if (forced !== os.forced) {
        os.forced = forced;
        this.io.setLocal(out, os.value, forced ? FORCED_ALARM : undefined);
      }
    }
  }

  /** Disconnected wired ports, inputs first. */
  disconnected(): PortState[] {
    return [...this.wiredIn, ...this.wiredOut].filter((s) => !s.connected);
  }

  /** CONN_INP / CONN_OUT arrays and SYS_CONN. */
  publishConnections(): void {
    if (this.wiredIn.length > 0)
      this.io.setLocal(
        "CONN_INP",
        this.wiredIn.map((s) => (s.connected ? 1 : 0)),
      );
    if (this.wiredOut.length > 0)
      this.io.setLocal(
        "CONN_OUT",
        this.wiredOut.map((s) => (s.connected ? 1 : 0)),
      );
    const sys = this.ports.get("SYS_CONN");
    if (sys) {
      const down = this.disconnected().map((s) => s.spec.name);
      const text = down.length === 0 ? "OK" : `DISCONNECTED: ${down.join(", ")}`;
      sys.value = convert(sys.spec, text);
      this.io.setLocal("SYS_CONN", sys.value, down.length > 0 ? FORCED_ALARM : undefined);
    }
  }

  /** The MESSAGE after a connectivity check: `All N inputs connected` or `DISCONNECTED (k/N): …`. */
  connectivityMessage(): string {
    const n = this.wiredIn.length;
    const down = this.wiredIn.filter((s) => !s.connected).map((s) => s.spec.name);
    if (down.length === 0) return `All ${n} inputs connected`;
    return `DISCONNECTED (${down.length}/${n}): ${down.join(", ")}`.slice(0, MAX_STR);
  }

  /** Variables of one evaluation: parameters, every declared PV, `<name>_buf` buffers. */
  private scope(): Map<string, Value> {
    const s = new Map<string, Value>();
    for (const [k, v] of Object.entries(this.parameters)) {
      if (typeof v === "number" || typeof v === "string" || typeof v === "boolean" || v === null)
        s.set(k, v);
      else if (Array.isArray(v) && v.every((x) => typeof x === "number" || typeof x === "string"))
        s.set(k, v as Value[]);
    }
    for (const [name, st] of this.ports) {
      if (st.spec.link === undefined && st.spec.direction === "input") {
        // Operators write unwired inputs over CA: read the PV's current value.
        try {
          st.value = convert(st.spec, this.io.getLocal(name));
        } catch {
          // Keep the last good value.
        }
      }
      s.set(name, st.value);
      if (st.buf) s.set(`${name}_buf`, st.buf.toArray());
    }
    return s;
  }

  /** Writes a transform or rule result to a declared PV (forwarded to its link when wired). */
  private write(name: string, raw: unknown): PortValue {
    const st = this.ports.get(name) as PortState;
    const v = convert(st.spec, raw);
    st.value = v;
    this.io.setLocal(name, v, st.forced ? FORCED_ALARM : undefined);
    if (st.spec.link !== undefined) this.io.putLink(name, v);
    return v;
  }

  private reportError(holder: { lastError: string }, what: string, e: unknown): void {
    this.errors++;
    const msg = e instanceof Error ? e.message : String(e);
    // Once per distinct error: a rule that fails every cycle must not flood the log.
    if (msg !== holder.lastError) this.io.log("warn", `${what}: ${msg}`);
    holder.lastError = msg;
  }

  /** One evaluation: transforms in order, then rule_defaults and rules with latching. */
  evaluate(): void {
    this.evaluations++;
    const scope = this.scope();
    for (const t of this.transforms) {
      try {
        const v = this.write(t.output, t.expr.evaluate(scope));
        scope.set(t.output, v);
        t.lastError = "";
      } catch (e) {
        this.reportError(
          t,
          `Transform ${t.output} error`,
          e instanceof ExprError ? e.message.replace(/^Transform \S+: /, "") : e,
        );
      }
    }
    if (this.rules.length === 0) return;
    for (const [name, v] of this.ruleDefaults) {
      if (!this.latched.has(name)) this.safeWrite(name, v);
    }
    const written = new Set<string>();
    for (const r of this.rules) this.runRule(r, scope, written);
    for (const name of [...this.inhibited]) if (!written.has(name)) this.inhibited.delete(name);
  }

  private safeWrite(name: string, v: unknown): PortValue | undefined {
    try {
      return this.write(name, v);
    } catch (e) {
      this.io.log("warn", (e as Error).message);
      return undefined;
    }
  }

  private runRule(r: CompiledRule, scope: Map<string, Value>, written: Set<string>): void {
    let fired: boolean;
    try {
      fired = truthy(r.cond.evaluate(scope));
      r.lastError = "";
    } catch (e) {
      this.reportError(
        r,
        `Rule ${r.spec.id} eval error`,
        e instanceof ExprError ? e.message.replace(/^Rule \S+ condition: /, "") : e,
      );
      fired = false;
    }
    if (fired && !r.firing)
      this.io.log("info", `Rule ${r.spec.id} fired: ${ruleStamp()} - ${r.spec.message}`);
    r.firing = fired;
    if (!fired) return;
    if (r.spec.messagePv && r.spec.message)
      this.safeWrite(r.spec.messagePv, `${ruleStamp()} - ${r.spec.message}`);
    for (const [name, v] of r.spec.outputs) {
      const out = this.safeWrite(name, v);
      written.add(name);
      const st = this.ports.get(name) as PortState;
      if (
        out !== undefined &&
        st.spec.latch &&
        !this.inhibited.has(name) &&
        latchFires(st.spec.latchDir, out)
      ) {
        this.latched.add(name);
      }
    }
    for (const [name, v] of r.spec.actuators)
      this.io.putLink(name, convert((this.ports.get(name) as PortState).spec, v));
  }

  /** CLEAR: release every latch (inhibited until a cycle no rule writes it) to its default. */
  clear(): void {
    for (const name of [...this.latched]) {
      this.inhibited.add(name);
      this.latched.delete(name);
      const d = this.ruleDefaults.get(name);
      if (d !== undefined) this.safeWrite(name, d);
    }
  }
}
