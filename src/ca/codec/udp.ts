/** UDP datagram parsing: several CA messages packed back to back in one datagram. */
import { type CaHeader, readHeaderBytes } from "./header.ts";

/** A message found in a datagram; `payload` is a view into the datagram. */
export interface DatagramMessage {
  header: CaHeader;
  payload: Uint8Array;
}

/**
 * Splits a datagram into messages. Stops at the first malformed one (truncated, misaligned),
 * keeping the messages before it, like rsrv which drops the rest of the datagram. Never throws.
 */
export function parseDatagram(bytes: Uint8Array): { messages: DatagramMessage[]; error?: string } {
  const messages: DatagramMessage[] = [];
  let off = 0;
  while (off < bytes.length) {
    const avail = bytes.length - off;
    // UDP messages are small: the extended header is never valid here.
    const r = readHeaderBytes(bytes, off, avail, false);
    if (r === null) return { messages, error: `truncated header at byte ${off} (${avail} bytes)` };
    const { header, headerSize } = r;
    if ((header.payloadSize & 7) !== 0) {
      return { messages, error: `misaligned payload size ${header.payloadSize} at byte ${off}` };
    }
    const end = off + headerSize + header.payloadSize;
    if (end > bytes.length) {
      return {
        messages,
        error: `truncated payload at byte ${off}: ${header.payloadSize} declared, ${avail - headerSize} present`,
      };
    }
    messages.push({ header, payload: bytes.subarray(off + headerSize, end) });
    off = end;
  }
  return { messages };
}
