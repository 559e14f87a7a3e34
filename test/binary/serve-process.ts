/**
 * Starts a real `iocmng serve` process (from sources, the compiled binary, or inside a chroot) on
 * loopback with random ports, waits until REST and CA answer, and stops it. Shared by the binary
 * and rootfs tests and by scripts/bench/coldstart.ts.
 */
import type { Subprocess } from "bun";
import { loopbackEpicsEnv } from "../helpers/loopback-env.ts";
import { waitFor } from "../helpers/poll.ts";

/** A running server process. */
export interface ServeProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  httpPort: number;
  caPort: number;
  /** http://127.0.0.1:<port>/api/v1 */
  api: string;
  /** Everything the process printed so far (stdout + stderr). */
  output(): string;
  /** SIGTERM, then resolves with the exit code (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
}

/** A port that is free for both TCP and UDP on 127.0.0.1 right now (CA uses both). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    try {
      const tcp = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
      const udp = await Bun.udpSocket({ hostname: "127.0.0.1", port });
      tcp.stop(true);
      udp.close();
      return port;
    } catch {
      // taken: try another
    }
  }
  throw new Error("no free port found");
}

/** Environment for a server on loopback: random HTTP and CA ports, beacons kept local. */
export async function serverEnv(extra: Record<string, string> = {}) {
  const httpPort = await freePort();
  const caPort = await freePort();
  const beaconPort = await freePort();
  return {
    httpPort,
    caPort,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: String(httpPort),
      IOCMNG_LOG_PRETTY: "0",
      IOCMNG_LOG_LEVEL: "info",
      ...loopbackEpicsEnv(caPort, beaconPort),
      ...extra,
    },
  };
}

async function pump(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink.push(decoder.decode(chunk, { stream: true }));
}

/** True once a TCP connection to 127.0.0.1:port succeeds. */
async function tcpAnswers(port: number): Promise<boolean> {
  try {
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

/** Starts `cmd` (which must run `iocmng serve`) and waits until /health answers and CA accepts. */
export async function startServe(
  cmd: string[],
  opts: { env: Record<string, string>; httpPort: number; caPort: number; timeoutMs?: number },
): Promise<ServeProcess> {
  const proc = Bun.spawn(cmd, { env: opts.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const chunks: string[] = [];
  void pump(proc.stdout, chunks);
  void pump(proc.stderr, chunks);
  const api = `http://127.0.0.1:${opts.httpPort}/api/v1`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const sp: ServeProcess = {
    proc,
    httpPort: opts.httpPort,
    caPort: opts.caPort,
    api,
    output: () => chunks.join(""),
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
  for (;;) {
    if (proc.exitCode !== null) {
      throw new Error(`iocmng exited with ${proc.exitCode} before serving:\n${sp.output()}`);
    }
    const healthy = await fetch(`${api}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy && (await tcpAnswers(opts.caPort))) return sp;
    if (Date.now() > deadline) {
      await sp.stop(1000);
      throw new Error(`iocmng did not serve within the timeout:\n${sp.output()}`);
    }
    await Bun.sleep(20);
  }
}

/** Polls `probe` until it returns a value other than undefined (bounded, not a timing assertion). */
export function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  return waitFor(what, probe, timeoutMs);
}
