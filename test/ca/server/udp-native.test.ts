import { expect, test } from "bun:test";
import {
  bindUdp,
  type NativeUdpSend,
  nativeUdpSend,
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
  const rx = await receiver();
  try {
    const native = nativeUdpSend(s);
    expect(native).not.toBeNull();
    const dropped: string[] = [];
    const sender = new SearchReplySender(s, native, (_e, to) => dropped.push(to));
    for (let i = 1; i <= 3; i++) sender.queue(new Uint8Array([i, i, i, i]), rx.port, "127.0.0.1");
    expect(sender.pending).toBe(true);
    expect(rx.got).toEqual([]);
    sender.flush();
    expect(sender.pending).toBe(false);
    await rx.until(3);
    expect(rx.got).toEqual([
      [1, 1, 1, 1],
      [2, 2, 2, 2],
      [3, 3, 3, 3],
    ]);
    expect(dropped).toEqual([]);
  } finally {
    rx.close();
    s.close();
  }
});

// What the native path does not take (kernel buffer full) still goes out through node:dgram.
test("SearchReplySender falls back to node:dgram for replies sendMany did not send", async () => {
  const s = await bindUdp("127.0.0.1", 0);
  const rx = await receiver();
  try {
    const real = nativeUdpSend(s) as NativeUdpSend;
    const partial: NativeUdpSend = {
      send: () => false,
      sendMany: (p) => (real.send(p[0] as Uint8Array, p[1] as number, p[2] as string) ? 1 : 0),
    };
    const dropped: string[] = [];
    const sender = new SearchReplySender(s, partial, (_e, to) => dropped.push(to));
    for (let i = 1; i <= 3; i++) sender.queue(new Uint8Array([i, 0, 0, 0]), rx.port, "127.0.0.1");
    sender.flush();
    await rx.until(3);
    expect(rx.got.map((d) => d[0]).sort()).toEqual([1, 2, 3]);
    expect(dropped).toEqual([]);
  } finally {
    rx.close();
    s.close();
  }
});
