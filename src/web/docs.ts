/**
 * The OpenAPI viewer (Scalar) served from the executable itself, so `/api/v1/docs` works on a
 * closed beamline network and in the scratch image. @elysiajs/openapi renders the page; it is
 * told to load the viewer's script from {@link SCALAR_PATH} instead of a CDN, and the page is
 * configured not to fetch fonts or call Scalar's services.
 */
import { Elysia } from "elysia";
// The viewer's self-contained browser bundle, embedded into the binary by `bun build --compile`.
import scalarBundle from "../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with {
  type: "file",
};
import type { DocsViewerOptions } from "../api/app.ts";
import { compressedAsset } from "./static.ts";

/** Where the viewer's script is served (under the REST prefix, beside the page). */
export const SCALAR_PATH = "/api/v1/docs/scalar.js";

/**
 * The `scalar` options for @elysiajs/openapi: local script, no web fonts, no "open in client"
 * button (it links to Scalar's hosted client), no telemetry, no hosted agent or developer tools. The cast: the plugin types the
 * option as Scalar's fully-defaulted configuration, while the viewer fills in every default.
 */
export const OFFLINE_SCALAR = {
  cdn: SCALAR_PATH,
  withDefaultFonts: false,
  hideClientButton: true,
  telemetry: false,
  // Hosted services (AI agent, developer tools, SDK generation) are unreachable offline.
  showDeveloperTools: "never",
  agent: { disabled: true },
} as unknown as DocsViewerOptions;

/** Elysia plugin serving the viewer's script (mount it at the root app). */
export function docsAssets() {
  const asset = compressedAsset(scalarBundle, "text/javascript; charset=utf-8");
  return new Elysia({ name: "iocmng-docs-assets" }).get(
    SCALAR_PATH,
    ({ request }) => asset(request),
    {
      detail: { hide: true },
    },
  );
}
