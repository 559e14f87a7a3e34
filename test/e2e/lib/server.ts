import { createSocket } from "node:dgram";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { loopbackEpicsEnv } from "../../helpers/loopback-env.ts";
import { waitFor } from "../../helpers/poll.ts";

export { waitFor };

const ROOT = resolve(import.meta.dir, "../../..");

/** A free UDP port on loopback (the CA search port must be known to clients in advance). */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((ok, ko) => {
    s.once("error", ko);
    s.bind(0, "127.0.0.1", () => ok());
  });
  const port = s.address().port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

/** A free TCP port on loopback (IOCMNG_PORT must be 1..65535, so 0 cannot be passed). */
export function freeTcpPort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** Temp state + plugins dirs shared by successive server runs (restart tests reuse them). */
export interface ServerDirs {
  root: string;
  stateDir: string;
  pluginsDir: string;
  remove(): Promise<void>;
}

/** Makes fresh temp dirs for one server's state and plugin clones. */
export async function makeDirs(): Promise<ServerDirs> {
  const root = await mkdtemp(join(tmpdir(), "iocmng-e2e-srv-"));
  // Plugins run as an unprivileged uid (nobody) when the tests run as root; several fixtures write
  // marker files here to show what they did, so they must be able to.
  await chmod(root, 0o777);
  return {
    root,
    stateDir: join(root, "state"),
    pluginsDir: join(root, "plugins"),
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

/** A spawned `bun src/main.ts serve` on loopback with random ports. */
export interface SpawnedServer {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  base: string;
  httpPort: number;
  caPort: number;
  /** Environment for CA clients (pyepics) to find this server only. */
  caEnv: Record<string, string>;
  /** Everything the server wrote so far (stdout JSON logs + stderr). */
  output(): string;
  api(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Sends a signal and waits for the exit code. */
  kill(signal?: NodeJS.Signals | number): Promise<number>;
}

/** A spawned server process that may not be listening yet (see {@link startProcess}). */
export interface ServerProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the server wrote so far (stdout JSON logs + stderr). */
  output(): string;
  /** Resolves with the REST and CA ports once both listen. */
  ready: Promise<{ http: number; ca: number }>;
}

/** Spawns `bun src/main.ts serve` on loopback with random ports, without waiting for it. */
export async function startProcess(
  dirs: ServerDirs,
  opts: { env?: Record<string, string>; caPort?: number } = {},
): Promise<ServerProcess> {
  const caPort = opts.caPort ?? (await freeUdpPort());
  const beaconPort = await freeUdpPort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? dirs.root,
    IOCMNG_HOST: "127.0.0.1",
    IOCMNG_PORT: String(freeTcpPort()),
    IOCMNG_STATE_DIR: dirs.stateDir,
    IOCMNG_PLUGINS_DIR: dirs.pluginsDir,
    IOCMNG_LOG_LEVEL: "debug",
    IOCMNG_LOG_PRETTY: "0",
    ...loopbackEpicsEnv(caPort, beaconPort),
    ...opts.env,
  };
  const proc = Bun.spawn([process.execPath, "src/main.ts", "serve"], {
    cwd: ROOT,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let out = "";
  let resolveReady: (v: { http: number; ca: number }) => void = () => {};
  const ready = new Promise<{ http: number; ca: number }>((ok) => {
    resolveReady = ok;
  });
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      out += dec.decode(chunk, { stream: true });
      // Our own log lines (src/server.ts): JSON with the ports, once REST and CA both listen.
      const rest = /"port":(\d+),"msg":"REST API on/.exec(out);
      const ca = /"udpPort":(\d+),"msg":"Channel Access server on/.exec(out);
      if (rest?.[1] !== undefined && ca?.[1] !== undefined) {
        resolveReady({ http: Number(rest[1]), ca: Number(ca[1]) });
      }
    }
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  return { proc, output: () => out, ready };
}

/** Spawns the real server; resolves once it prints where it listens (REST and CA both up). */
export async function spawnServer(
  dirs: ServerDirs,
  opts: { env?: Record<string, string>; caPort?: number; timeoutMs?: number } = {},
): Promise<SpawnedServer> {
  const { proc, output, ready } = await startProcess(dirs, opts);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ports = await Promise.race([
    ready,
    proc.exited.then((code) => {
      throw new Error(`server exited with ${code} before listening:\n${output()}`);
    }),
    new Promise<never>((_ok, ko) => {
      timer = setTimeout(() => {
        proc.kill(9);
        ko(new Error(`server did not start within ${timeoutMs} ms:\n${output()}`));
      }, timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  const base = `http://127.0.0.1:${ports.http}/api/v1`;
  return {
    proc,
    base,
    httpPort: ports.http,
    caPort: ports.ca,
    caEnv: {
      EPICS_CA_ADDR_LIST: "127.0.0.1",
      EPICS_CA_AUTO_ADDR_LIST: "NO",
      EPICS_CA_SERVER_PORT: String(ports.ca),
    },
    output,
    async api(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === "string" ? body : JSON.stringify(body);
        (init.headers as Record<string, string>)["content-type"] ??= "application/json";
      }
      const res = await fetch(base + path, init);
      const text = await res.text();
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        parsed = { raw: text };
      }
      return { status: res.status, body: parsed };
    },
    async kill(signal = "SIGTERM") {
      proc.kill(signal);
      return await proc.exited;
    },
  };
}
