import { expect, test } from "bun:test";
import { MAX_UDP_SEND } from "../../../src/ca/codec/constants.ts";
import {
  bindUdp,
  MAX_LOOPBACK_REPLY,
  type NativeUdpSend,
  nativeUdpSend,
  replyCap,
  SearchReplySender,
} from "../../../src/ca/server/udp.ts";

// Search replies go out through Bun's native socket under node:dgram (the connect-storm fast
// path). If a Bun upgrade changes dgram's internals this fails, instead of silently falling back.
test("search replies can use the native socket under a shared (SO_REUSEADDR) dgram socket", async () => {
  const s = await bindUdp("127.0.0.1", 0);
  const got: Uint8Array[] = [];
  let wake: () => void = () => {};
  const rx = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_sock, d) {
        got.push(new Uint8Array(d));
        wake();
      },
    },
  });
  try {
    const native = nativeUdpSend(s);
    expect(native).not.toBeNull();
    const payload = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(native?.send(payload, rx.port, "127.0.0.1")).toBe(true);
    const deadline = Date.now() + 5000;
    while (got.length === 0 && Date.now() < deadline) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
    expect(got.map((d) => [...d])).toEqual([[...payload]]);
    // A refused destination is reported as a failed send, not thrown.
    expect(native?.send(payload, 0, "127.0.0.1")).toBe(false);
  } finally {
    rx.close();
    s.close();
  }
});

async function receiver(): Promise<{
  got: number[][];
  port: number;
  until(n: number): Promise<void>;
  close(): void;
}> {
  const got: number[][] = [];
  let wake: () => void = () => {};
  const rx = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_sock, d) {
        got.push([...new Uint8Array(d)]);
        wake();
      },
    },
  });
  return {
    got,
    port: rx.port,
    async until(n) {
      const deadline = Date.now() + 5000;
      while (got.length < n && Date.now() < deadline) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    close: () => rx.close(),
  };
}

// Replies of a search burst are queued and leave together on flush (one sendmmsg), in order.
test("SearchReplySender sends queued replies on flush, through sendMany", async () => {
  const s = await bindUdp("127.0.0.1", 0);
  const rx1 = await receiver();
  const rx2 = await receiver();
  try {
    const native = nativeUdpSend(s);
    expect(native).not.toBeNull();
    const dropped: string[] = [];
    const sender = new SearchReplySender(s, native, (_e, to) => dropped.push(to));
    // Alternating peers: nothing to merge, four datagrams.
    for (let i = 1; i <= 4; i++)
      sender.queue(new Uint8Array([i, i, i, i]), i % 2 ? rx1.port : rx2.port, "127.0.0.1");
    expect(sender.pending).toBe(true);
    expect(rx1.got).toEqual([]);
    sender.flush();
    expect(sender.pending).toBe(false);
    await rx1.until(2);
    await rx2.until(2);
    expect(rx1.got).toEqual([
      [1, 1, 1, 1],
      [3, 3, 3, 3],
    ]);
    expect(rx2.got).toEqual([
      [2, 2, 2, 2],
      [4, 4, 4, 4],
    ]);
    expect(dropped).toEqual([]);
  } finally {
    rx1.close();
    rx2.close();
    s.close();
  }
});

// Consecutive replies to one peer share a datagram, up to the peer's cap (64 KiB on loopback).
test("SearchReplySender merges consecutive replies to one peer up to the cap", async () => {
  const s = await bindUdp("127.0.0.1", 0);
  const rx = await receiver();
  try {
    const sender = new SearchReplySender(s, nativeUdpSend(s), () => {});
    for (let i = 1; i <= 3; i++) sender.queue(new Uint8Array([i, i, i, i]), rx.port, "127.0.0.1");
    // 12 + 40,000 fits in one loopback datagram; the next 40,000 bytes do not.
    const big1 = new Uint8Array(40_000).fill(7);
    const big2 = new Uint8Array(40_000).fill(8);
    sender.queue(big1, rx.port, "127.0.0.1");
    sender.queue(big2, rx.port, "127.0.0.1");
    sender.flush();
    await rx.until(2);
    await Bun.sleep(50); // a wrongly split third datagram would arrive by now
    expect(rx.got.length).toBe(2);
    expect(rx.got[0]?.slice(0, 12)).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    expect(rx.got[0]?.length).toBe(40_012);
    expect(rx.got[0]?.slice(12).every((b) => b === 7)).toBe(true);
    expect(rx.got[1]?.length).toBe(40_000);
    expect(rx.got[1]?.every((b) => b === 8)).toBe(true);
  } finally {
    rx.close();
    s.close();
  }
});

// Off loopback a merged reply stays within rsrv's 1024-byte datagrams (no IP fragmentation).
test("replyCap: 64 KiB on loopback, rsrv's 1024 bytes elsewhere", () => {
  expect(replyCap("127.0.0.1")).toBe(MAX_LOOPBACK_REPLY);
  expect(replyCap("127.5.6.7")).toBe(MAX_LOOPBACK_REPLY);
  expect(replyCap("10.0.0.1")).toBe(MAX_UDP_SEND);
  expect(replyCap("192.168.1.127")).toBe(MAX_UDP_SEND);
  expect(MAX_LOOPBACK_REPLY).toBeLessThanOrEqual(65_507); // largest IPv4 UDP payload
});

// What the native path does not take (kernel buffer full) still goes out through node:dgram.
test("SearchReplySender falls back to node:dgram for replies sendMany did not send", async () => {
  const s = await bindUdp("127.0.0.1", 0);
  const rx1 = await receiver();
  const rx2 = await receiver();
  try {
    const real = nativeUdpSend(s) as NativeUdpSend;
    const partial: NativeUdpSend = {
      send: () => false,
      sendMany: (p) => (real.send(p[0] as Uint8Array, p[1] as number, p[2] as string) ? 1 : 0),
    };
    const dropped: string[] = [];
    const sender = new SearchReplySender(s, partial, (_e, to) => dropped.push(to));
    for (let i = 1; i <= 3; i++)
      sender.queue(new Uint8Array([i, 0, 0, 0]), i === 2 ? rx2.port : rx1.port, "127.0.0.1");
    sender.flush();
    await rx1.until(2);
    await rx2.until(1);
    expect(rx1.got.map((d) => d[0]).sort()).toEqual([1, 3]);
    expect(rx2.got.map((d) => d[0])).toEqual([2]);
    expect(dropped).toEqual([]);
  } finally {
    rx1.close();
    rx2.close();
    s.close();
  }
});

// The responder reuses one scratch buffer for every reply piece: queue() must copy.
test("SearchReplySender copies what it queues (the caller reuses its buffer)", async () => {
  const s = await bindUdp("127.0.0.1", 0);
  const rx1 = await receiver();
  const rx2 = await receiver();
  try {
    const sender = new SearchReplySender(s, nativeUdpSend(s), () => {});
    const scratch = new Uint8Array(8);
    scratch.fill(1);
    sender.queue(scratch, rx1.port, "127.0.0.1", 3);
    scratch.fill(2);
    sender.queue(scratch, rx2.port, "127.0.0.1", 5);
    scratch.fill(3);
    sender.flush();
    await rx1.until(1);
    await rx2.until(1);
    expect(rx1.got).toEqual([[1, 1, 1]]);
    expect(rx2.got).toEqual([[2, 2, 2, 2, 2]]);
  } finally {
    rx1.close();
    rx2.close();
    s.close();
  }
});
