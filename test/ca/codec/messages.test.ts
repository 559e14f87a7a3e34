import { describe, expect, test } from "bun:test";
import {
  type CaHeader,
  CMD,
  ECA,
  encodeAccessRights,
  encodeBeacon,
  encodeClearChannelReply,
  encodeCreateChanReply,
  encodeCreateChFail,
  encodeEcho,
  encodeError,
  encodeEventCancelAck,
  encodeEventUpdate,
  encodeNotFound,
  encodeReadNotifyReply,
  encodeReadReply,
  encodeReadSync,
  encodeSearchReply,
  encodeServerDisconn,
  encodeUdpVersion,
  encodeVersion,
  encodeWriteNotifyReply,
  MessageReader,
  readHeader,
  writeEventUpdateHeader,
} from "../../../src/ca/codec/index.ts";
import { bytes, h, hex } from "./helpers.ts";

const hdr = (p: Partial<CaHeader>): CaHeader => ({
  command: 0,
  payloadSize: 0,
  dataType: 0,
  count: 0,
  p1: 0,
  p2: 0,
  ...p,
});

describe("golden bytes of server→client messages", () => {
  test("TCP VERSION (ca-protocol-facts.md, Circuit opening)", () => {
    expect(hex(encodeVersion())).toBe(h("0000 0000 0000 000d 00000000 00000000"));
  });

  test("UDP VERSION echoes the sequence number for minor ≥ 11 only", () => {
    expect(hex(encodeUdpVersion(1, 13))).toBe(h("0000 0000 0001 000d 00000001 00000000"));
    expect(hex(encodeUdpVersion(77, 10))).toBe(h("0000 0000 0000 000d 00000000 00000000"));
  });

  test("SEARCH reply (ca-protocol-facts.md, Worked examples)", () => {
    expect(hex(encodeSearchReply(5064, 7))).toBe(
      h("0006 0008 13c8 0000 ffffffff 00000007  000d 0000 0000 0000"),
    );
  });

  test("NOT_FOUND copies the search header with command 14", () => {
    const search = hdr({
      command: CMD.SEARCH,
      payloadSize: 8,
      dataType: 10,
      count: 13,
      p1: 7,
      p2: 7,
    });
    expect(hex(encodeNotFound(search))).toBe(h("000e 0000 000a 000d 00000007 00000007"));
  });

  test("ACCESS_RIGHTS then CREATE_CHAN reply (ca-protocol-facts.md, Circuit opening)", () => {
    expect(hex(encodeAccessRights(1, 3))).toBe(h("0016 0000 0000 0000 00000001 00000003"));
    expect(hex(encodeCreateChanReply(1, 4, 6, 1))).toBe(h("0012 0000 0006 0001 00000001 00000004"));
  });

  test("CREATE_CHAN reply for 1 M elements: extended header, or clamped to 0xFFFE", () => {
    expect(hex(encodeCreateChanReply(1, 4, 6, 1_000_000))).toBe(
      h("0012 ffff 0006 0000 00000001 00000004 00000000 000f4240"),
    );
    expect(hex(encodeCreateChanReply(1, 4, 6, 1_000_000, false))).toBe(
      h("0012 0000 0006 fffe 00000001 00000004"),
    );
  });

  test("CREATE_CH_FAIL and SERVER_DISCONN carry the CID", () => {
    expect(hex(encodeCreateChFail(9))).toBe(h("001a 0000 0000 0000 00000009 00000000"));
    expect(hex(encodeServerDisconn(3))).toBe(h("001b 0000 0000 0000 00000003 00000000"));
  });

  test("READ_NOTIFY reply: p1 = ECA status, p2 = IOID, payload padded", () => {
    const payload = bytes("00000000 000003e8 00000005 00000000 400c000000000000");
    expect(hex(encodeReadNotifyReply(20, 1, ECA.NORMAL, 9, payload, false))).toBe(
      h("000f 0018 0014 0001 00000001 00000009") + hex(payload),
    );
    // Unpadded payload gets padded.
    expect(hex(encodeReadNotifyReply(1, 1, ECA.NORMAL, 2, bytes("0003"), false))).toBe(
      h("000f 0008 0001 0001 00000001 00000002 0003 000000000000"),
    );
  });

  test("READ_NOTIFY reply above 0xFFF8 bytes needs the extended header", () => {
    const payload = new Uint8Array(0x10000);
    const m = encodeReadNotifyReply(6, 0x2000, ECA.NORMAL, 1, payload, true);
    expect(hex(m.subarray(0, 24))).toBe(
      h("000f ffff 0006 0000 00000001 00000001 00010000 00002000"),
    );
    expect(m.length).toBe(24 + 0x10000);
    expect(() => encodeReadNotifyReply(6, 0x2000, ECA.NORMAL, 1, payload, false)).toThrow(
      RangeError,
    );
  });

  test("deprecated READ reply: p1 = CID, DBR_STRING count 1 shortened to strlen+1", () => {
    const s = new Uint8Array(40);
    s.set([0x61, 0x62, 0x63]);
    expect(hex(encodeReadReply(0, 1, 5, 9, s, false))).toBe(
      h("0003 0008 0000 0001 00000005 00000009 61626300 00000000"),
    );
    const full = new Uint8Array(40).fill(0x41);
    full[39] = 0;
    expect(encodeReadReply(0, 1, 5, 9, full, false).length).toBe(16 + 40);
    expect(hex(encodeReadReply(6, 1, 5, 9, bytes("400c000000000000"), false))).toBe(
      h("0003 0008 0006 0001 00000005 00000009 400c000000000000"),
    );
  });

  test("EVENT_ADD update, and writeEventUpdateHeader writes the same header", () => {
    const payload = bytes("400c000000000000");
    const m = encodeEventUpdate(6, 1, ECA.NORMAL, 2, payload, false);
    expect(hex(m)).toBe(h("0001 0008 0006 0001 00000001 00000002 400c000000000000"));
    const buf = new Uint8Array(40);
    const n = writeEventUpdateHeader(new DataView(buf.buffer), 4, 6, 1, ECA.NORMAL, 2, 8, false);
    expect(n).toBe(16);
    expect(hex(buf.subarray(4, 20))).toBe(hex(m.subarray(0, 16)));
    const n2 = writeEventUpdateHeader(new DataView(buf.buffer), 0, 6, 70000, 1, 2, 560000, true);
    expect(n2).toBe(24);
    expect(hex(buf.subarray(0, 24))).toBe(
      h("0001 ffff 0006 0000 00000001 00000002 00088b80 00011170"),
    );
  });

  test("an empty monitor update is refused (libca would take it for a cancel ack)", () => {
    expect(() => encodeEventUpdate(6, 1, 1, 2, new Uint8Array(0), false)).toThrow(RangeError);
  });

  test("EVENT_CANCEL ack is command 1 with no payload, p1 = SID", () => {
    expect(hex(encodeEventCancelAck(6, 1, 4, 2))).toBe(h("0001 0000 0006 0001 00000004 00000002"));
    expect(hex(encodeEventCancelAck(6, 1_000_000, 4, 2))).toBe(
      h("0001 0000 0006 fffe 00000004 00000002"),
    );
  });

  test("WRITE_NOTIFY reply: p1 = status, p2 = IOID", () => {
    expect(hex(encodeWriteNotifyReply(6, 1, ECA.NORMAL, 9))).toBe(
      h("0013 0000 0006 0001 00000001 00000009"),
    );
    expect(hex(encodeWriteNotifyReply(0, 1, ECA.PUTFAIL, 10))).toBe(
      h("0013 0000 0000 0001 000000a0 0000000a"),
    );
  });

  test("ERROR: offending header copied + NUL-terminated text, padded", () => {
    const off = hdr({ command: 99, dataType: 1, count: 2, p1: 3, p2: 4 });
    expect(hex(encodeError(1, ECA.INTERNAL, off, false, "bad"))).toBe(
      h(
        "000b 0018 0000 0000 00000001 0000008e  0063 0000 0001 0002 00000003 00000004  62616400 00000000",
      ),
    );
  });

  test("ERROR keeps an extended offending header in its 24-byte form", () => {
    const off = hdr({ command: 4, payloadSize: 16, dataType: 6, count: 2, p1: 3, p2: 4 });
    expect(hex(encodeError(0xffffffff, ECA.PUTFAIL, off, true, ""))).toBe(
      h(
        "000b 0020 0000 0000 ffffffff 000000a0  0004 ffff 0006 0000 00000003 00000004 00000010 00000002  00 00000000000000",
      ),
    );
  });

  test("ERROR payload is capped at 512 bytes and stays NUL-terminated", () => {
    const m = encodeError(1, ECA.INTERNAL, hdr({}), false, "x".repeat(5000));
    expect(m.length).toBe(16 + 512);
    expect(m[16 + 511]).toBe(0);
    expect(m[16 + 510]).toBe(0x78);
  });

  test("CLEAR_CHANNEL, READ_SYNC and ECHO copy the request back", () => {
    expect(hex(encodeClearChannelReply(hdr({ command: 12, p1: 4, p2: 1 })))).toBe(
      h("000c 0000 0000 0000 00000004 00000001"),
    );
    expect(hex(encodeReadSync(hdr({ command: 10, p1: 7 })))).toBe(
      h("000a 0000 0000 0000 00000007 00000000"),
    );
    expect(hex(encodeEcho(hdr({ command: 23 }), new Uint8Array(0)))).toBe(
      h("0017 0000 0000 0000 00000000 00000000"),
    );
    expect(
      hex(encodeEcho(hdr({ command: 23, payloadSize: 8, p2: 5 }), bytes("0102030405060708"))),
    ).toBe(h("0017 0008 0000 0000 00000000 00000005 0102030405060708"));
  });

  test("beacon: dt = minor, count = TCP port, p1 = ID, p2 = 0", () => {
    expect(hex(encodeBeacon(5064, 3))).toBe(h("000d 0000 000d 13c8 00000003 00000000"));
  });

  test("every encoder output re-parses as one aligned message", () => {
    const msgs = [
      encodeVersion(),
      encodeSearchReply(5064, 7),
      encodeAccessRights(1, 3),
      encodeError(1, ECA.INTERNAL, hdr({}), false, "hello world"),
      encodeEventUpdate(0, 1, 1, 2, new Uint8Array(40), false),
      encodeBeacon(1, 2),
    ];
    for (const m of msgs) {
      expect(m.length % 8).toBe(0);
      const r = new MessageReader({ maxPayload: 1 << 20, extendedAllowed: () => true });
      r.push(m);
      const item = r.next();
      expect(item?.kind).toBe("message");
      expect(r.next()).toBeNull();
      expect(r.buffered).toBe(0);
      const parsed = readHeader(new DataView(m.buffer), 0, m.length, true);
      expect(parsed?.header.payloadSize).toBe(m.length - (parsed?.headerSize ?? 0));
    }
  });
});
