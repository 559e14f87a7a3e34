/**
 * Fuzz: over 100,000 random and mutated-valid messages over TCP and UDP (the mutations start from
 * every client message of the captures: flipped bytes, truncations, swapped byte order, random
 * commands, segmented runs, and now and then a framing error that ends the connection). The server
 * must survive, keep no channels or operations of the fuzzing connections, and then serve a normal
 * GET and search. A seeded generator keeps failures reproducible (IOCMNG_FUZZ_SEED).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import dgram from "node:dgram";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { PvRegistry } from "../../src/pv/registry.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient, udpSearch } from "../helpers/pva-client.ts";
import { hexToBytes } from "../helpers/pva-dissect.ts";
import { startPva } from "../helpers/pva-harness.ts";

const SEED = Number(process.env.IOCMNG_FUZZ_SEED ?? 12345);
let state = SEED >>> 0;
function rand(n: number): number {
  // xorshift32: fast, seeded, good enough to pick mutations.
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state % n;
}

const DIR = join(import.meta.dir, "fixtures");
const tcpSeeds: Uint8Array[] = [];
const udpSeeds: Uint8Array[] = [];
for (const f of readdirSync(DIR).filter((x) => x.endsWith(".json"))) {
  const cap = JSON.parse(readFileSync(join(DIR, f), "utf8").replace(/\bNaN\b/g, "null")) as {
    messages: Array<{ dir: string; proto: string; hex: string }>;
  };
  for (const m of cap.messages) {
    if (m.dir !== "c2s") continue;
    (m.proto === "tcp" ? tcpSeeds : udpSeeds).push(hexToBytes(m.hex));
  }
}

function header(flags: number, cmd: number, size: number): Uint8Array {
  const h = Uint8Array.of(0xca, 2, flags, cmd, 0, 0, 0, 0);
  new DataView(h.buffer).setUint32(4, size, (flags & 0x80) === 0);
  return h;
}

function frame(flags: number, cmd: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out.set(header(flags, cmd, payload.length));
  out.set(payload, 8);
  return out;
}

/** One well-framed fuzz message (so the stream survives and the next one is parsed too). */
function mutant(seeds: Uint8Array[]): Uint8Array {
  const seed = seeds[rand(seeds.length)] as Uint8Array;
  const flags = seed[2] ?? 0;
  const cmd = seed[3] ?? 0;
  const payload = seed.slice(8);
  switch (rand(6)) {
    case 0: {
      const n = 1 + rand(4);
      for (let i = 0; i < n && payload.length > 0; i++) payload[rand(payload.length)] = rand(256);
      return frame(flags & 0x80, cmd, payload);
    }
    case 1:
      return frame(flags & 0x80, cmd, payload.subarray(0, rand(payload.length + 1)));
    case 2:
      // Same bytes, the other byte order: sizes and ids read differently.
      return frame((flags ^ 0x80) & 0x80, cmd, payload);
    case 3: {
      const junk = new Uint8Array(rand(64));
      for (let i = 0; i < junk.length; i++) junk[i] = rand(256);
      return frame(rand(2) << 7, rand(32), junk);
    }
    case 4: {
      // A valid segmented run of the seed.
      const cut = rand(payload.length + 1);
      const a = frame(0x10 | (flags & 0x80), cmd, payload.subarray(0, cut));
      const b = frame(0x20 | (flags & 0x80), cmd, payload.subarray(cut));
      const out = new Uint8Array(a.length + b.length);
      out.set(a);
      out.set(b, a.length);
      return out;
    }
    default: {
      const ext = new Uint8Array(payload.length + 1 + rand(16));
      ext.set(payload);
      for (let i = payload.length; i < ext.length; i++) ext[i] = rand(256);
      return frame(flags & 0x80, cmd, ext);
    }
  }
}

/** Ends a batch: sometimes a framing error, which closes the connection. */
function breaker(): Uint8Array {
  switch (rand(3)) {
    case 0:
      return Uint8Array.of(0x00, 2, 0, 1, 0, 0, 0, 0);
    case 1:
      return header(0, 10, 0x7fffffff);
    default:
      return frame(0x30, 10, Uint8Array.of(1));
  }
}

let registry: PvRegistry;
let server: PvaServer;
beforeAll(async () => {
  ({ registry, server } = await startPva({
    config: { maxChannelsPerConnection: 64, maxOpsPerConnection: 64, maxMessageBytes: 1 << 20 },
  }));
  registry.add({ name: "PVA:TEST:DBL", kind: "double", writable: true, initial: 1.5 }, () => {});
  registry.add({
    name: "PVA:TEST:ENUM",
    kind: "enum",
    writable: true,
    meta: { states: ["a", "b"] },
  });
  registry.add({ name: "PVA:TEST:STR", kind: "string", writable: true });
});
afterAll(async () => {
  await server.stop();
});

const TCP_MESSAGES = 80_000;
const UDP_MESSAGES = 30_000;

test(`fuzz: ${TCP_MESSAGES} TCP + ${UDP_MESSAGES} UDP messages, then a normal GET`, async () => {
  Bun.gc(true);
  const heapBefore = process.memoryUsage().heapUsed;
  let sent = 0;
  while (sent < TCP_MESSAGES) {
    const c = await PvaClient.connect(server.tcpPort);
    await c.channel("PVA:TEST:DBL"); // sid 0x07050301, which the captured requests name
    const parts: Uint8Array[] = [];
    const n = 2000;
    for (let i = 0; i < n; i++) parts.push(mutant(tcpSeeds));
    sent += n;
    const breaks = rand(4) === 0;
    if (breaks) parts.push(breaker());
    c.raw(Buffer.concat(parts));
    if (breaks) await c.waitClosed();
    else {
      // A round trip proves the server read the whole batch and still answers on this connection.
      c.echo(Uint8Array.of(0xee));
      await c.next((m) => m.command === 2 && m.payload[0] === 0xee, 20_000);
      c.close();
    }
  }

  const udp = dgram.createSocket("udp4");
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
  // Several messages per datagram, as pvxs packs ORIGIN_TAG + SEARCH; paced so the kernel's
  // receive buffer (the server runs on this same event loop) does not simply drop them.
  let datagrams = 0;
  for (let i = 0; i < UDP_MESSAGES; i += 4) {
    const msgs = [0, 1, 2, 3].map(() =>
      rand(4) === 0 ? mutant([Uint8Array.of(0xca, 2, 0, 0)]) : mutant(udpSeeds),
    );
    udp.send(Buffer.concat(msgs), server.udpPort, "127.0.0.1");
    if (++datagrams % 50 === 0) await Bun.sleep(1);
  }
  udp.close();

  // Still serving: search and GET on fresh sockets.
  // Replies to the forged reply ports provoke ICMP errors that slow the search socket's reads
  // while the flood lasts: wait until the server has read what was sent (or stopped reading).
  let seen = -1;
  for (let i = 0; i < 300 && server.stats().searchDatagrams !== seen; i++) {
    seen = server.stats().searchDatagrams;
    if (seen >= datagrams) break;
    await Bun.sleep(100);
  }
  const found = await udpSearch(server.udpPort, ["PVA:TEST:DBL"]);
  expect(found.length).toBe(1);
  const c = await PvaClient.connect(server.tcpPort);
  expect((await c.get("PVA:TEST:DBL")).type.id).toBe("epics:nt/NTScalar:1.0");
  c.close();

  for (let i = 0; i < 250 && server.stats().connections > 0; i++) await Bun.sleep(20);
  const s = server.stats();
  expect(s).toMatchObject({ connections: 0, channels: 0, operations: 0, queuedUpdates: 0 });
  expect(s.messages).toBeGreaterThan(TCP_MESSAGES / 2);
  expect(s.badMessages).toBeGreaterThan(0);
  expect(s.searchDatagrams).toBeGreaterThan(datagrams / 2);
  Bun.gc(true);
  expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);
}, 120_000);
