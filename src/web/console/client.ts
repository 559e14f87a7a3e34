/**
 * The console's connections to its own server: REST (with the bearer token when the operator
 * entered one) and one PV Web Socket shared by every view, with reconnect and merged updates
 * (PVWS sends metadata once, then changes; views always see the merged, complete value).
 */

const TOKEN_KEY = "iocmng.token";

/** The API token for this browser tab (sessionStorage: gone when the tab closes). */
export function getToken(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token: string): void {
  if (token === "") sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
  pvws.authenticate();
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

/** A REST call under /api/v1; never throws for HTTP errors (the body says what went wrong). */
export async function api<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
): Promise<ApiAnswer<T>> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token !== "") headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(`/api/v1${path}`, init);
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { ok: false, message: text || res.statusText };
  }
  return { status: res.status, body: parsed as T };
}

/** A PV as the console knows it: the merge of every PVWS update received. */
export interface PvData {
  pv: string;
  connected?: boolean;
  vtype?: string;
  value?: number | string | number[];
  text?: string;
  units?: string;
  precision?: number;
  min?: number;
  max?: number;
  warn_low?: number;
  warn_high?: number;
  alarm_low?: number;
  alarm_high?: number;
  labels?: string[];
  severity?: string;
  readonly?: boolean;
  seconds?: number;
  nanos?: number;
}

type Listener = (d: PvData) => void;

function decodeArray(m: Record<string, unknown>): number[] | undefined {
  const kinds: Array<[string, (b: ArrayBuffer) => ArrayLike<number>]> = [
    ["b64dbl", (b) => new Float64Array(b)],
    ["b64int", (b) => new Int32Array(b)],
    ["b64byt", (b) => new Uint8Array(b)],
  ];
  for (const [key, view] of kinds) {
    const b64 = m[key];
    if (typeof b64 !== "string") continue;
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    delete m[key];
    return Array.from(view(bytes.buffer));
  }
  return undefined;
}

/** One PV Web Socket for the page; subscriptions survive reconnects. */
class PvwsClient {
  private ws: WebSocket | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly values = new Map<string, PvData>();
  private readonly errorListeners = new Set<(msg: string) => void>();
  private readonly stateListeners = new Set<(up: boolean) => void>();
  connected = false;

  private open(): void {
    if (this.ws !== null) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/pvws/pv`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.setConnected(true);
      this.authenticate();
      const names = [...this.listeners.keys()];
      if (names.length > 0) this.send({ type: "subscribe", pvs: names });
    };
    ws.onmessage = (ev) => this.receive(String(ev.data));
    ws.onclose = () => {
      this.ws = null;
      this.setConnected(false);
      for (const [name, d] of this.values) this.values.set(name, { ...d, connected: false });
      for (const [name, set] of this.listeners) {
        const d = this.values.get(name);
        if (d) for (const l of set) l(d);
      }
      if (this.listeners.size > 0) setTimeout(() => this.open(), 2000);
    };
  }

  private setConnected(up: boolean): void {
    this.connected = up;
    for (const l of this.stateListeners) l(up);
  }

  private send(msg: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Presents the token (writes need it when the server has one). */
  authenticate(): void {
    const token = getToken();
    if (token !== "") this.send({ type: "auth", token });
  }

  private receive(text: string): void {
    const m = JSON.parse(text) as Record<string, unknown>;
    if (m.type === "error") {
      for (const l of this.errorListeners) l(String(m.message));
      return;
    }
    if (m.type !== "update" || typeof m.pv !== "string") return;
    const arr = decodeArray(m);
    if (arr !== undefined) m.value = arr;
    const name = m.pv;
    const merged: PvData = { ...(this.values.get(name) ?? { pv: name }), ...(m as object) };
    if (m.connected === false) {
      delete merged.value;
      delete merged.text;
    }
    this.values.set(name, merged);
    for (const l of this.listeners.get(name) ?? []) l(merged);
  }

  /** Calls `cb` with the PV's merged data now (if known) and on every update. */
  subscribe(name: string, cb: Listener): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(name, set);
      this.open();
      this.send({ type: "subscribe", pvs: [name] });
    }
    set.add(cb);
    const known = this.values.get(name);
    if (known) cb(known);
    return () => {
      const s = this.listeners.get(name);
      s?.delete(cb);
      if (s?.size === 0) {
        this.listeners.delete(name);
        this.values.delete(name);
        this.send({ type: "clear", pvs: [name] });
      }
    };
  }

  write(name: string, value: number | string): void {
    this.send({ type: "write", pv: name, value });
  }

  onError(cb: (msg: string) => void): () => void {
    this.errorListeners.add(cb);
    return () => this.errorListeners.delete(cb);
  }

  onState(cb: (up: boolean) => void): () => void {
    this.stateListeners.add(cb);
    return () => this.stateListeners.delete(cb);
  }
}

export const pvws = new PvwsClient();

/** The value as an operator reads it: precision, enum label, units. */
export function formatValue(d: PvData | undefined): string {
  if (d === undefined || d.connected === false) return "—";
  if (Array.isArray(d.value)) {
    const head = d.value.slice(0, 8).map((x) => fmtNum(x, d.precision));
    return `[${head.join(", ")}${d.value.length > 8 ? ", …" : ""}] (${d.value.length})`;
  }
  if (d.text !== undefined) return d.text;
  if (typeof d.value === "number") return fmtNum(d.value, d.precision);
  return String(d.value ?? "—");
}

function fmtNum(x: number, precision?: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (precision !== undefined && !Number.isInteger(x)) return x.toFixed(precision);
  return String(x);
}

/** CSS class for an alarm severity (EPICS colours: minor yellow, major red, invalid magenta). */
export function severityClass(d: PvData | undefined): string {
  if (d === undefined || d.connected === false) return "sev-disconnected";
  switch (d.severity) {
    case "MINOR":
      return "sev-minor";
    case "MAJOR":
      return "sev-major";
    case "INVALID":
    case "UNDEFINED":
      return "sev-invalid";
    default:
      return "sev-none";
  }
}
