import { expect, test } from "bun:test";
import { bindUdp, nativeUdpSend } from "../../../src/ca/server/udp.ts";

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
