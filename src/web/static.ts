/**
 * Serving embedded files: read once from the executable's embedded file system, gzip once when a
 * client first asks for gzip (console bundle and docs viewer are megabytes of JavaScript; a wall
 * display on a slow link loads a quarter of that), then served from memory with an ETag.
 */
import { createHash } from "node:crypto";

/** A handler for one embedded file at `path` (as given by a `with { type: "file" }` import). */
export function compressedAsset(path: string, contentType: string) {
  let plain: Uint8Array | null = null;
  let gzip: Uint8Array | null = null;
  let etag = "";
  const load = async (): Promise<Uint8Array> => {
    if (plain === null) {
      plain = new Uint8Array(await Bun.file(path).arrayBuffer());
      etag = `"${createHash("sha256").update(plain).digest("hex").slice(0, 16)}"`;
    }
    return plain;
  };
  return async (request: Request): Promise<Response> => {
    const body = await load();
    const headers: Record<string, string> = {
      "content-type": contentType,
      etag,
      // Embedded assets change only with the executable; revalidate cheaply by ETag.
      "cache-control": "no-cache",
      vary: "accept-encoding",
    };
    if (request.headers.get("if-none-match") === etag) {
      return new Response(null, { status: 304, headers });
    }
    if (/\bgzip\b/.test(request.headers.get("accept-encoding") ?? "")) {
      gzip ??= Bun.gzipSync(body as Uint8Array<ArrayBuffer>);
      return new Response(gzip as Uint8Array<ArrayBuffer>, {
        headers: { ...headers, "content-encoding": "gzip" },
      });
    }
    return new Response(body as Uint8Array<ArrayBuffer>, { headers });
  };
}
