/**
 * The console page at `/`. An HTML import: Bun bundles index.html with its script (Preact, TSX)
 * and stylesheet when the executable is compiled (and on first request when run from source),
 * and serves the bundle's assets itself; nothing is fetched from outside.
 *
 * It is handed to Bun.serve's `routes` (through the root app's `serve.routes` config) rather
 * than to an Elysia route: Elysia turns an HTML bundle into a static route only for apps without
 * request hooks, and ours has them (auth, metrics).
 */
import consolePage from "./console/index.html";

export const CONSOLE_ROUTES = { "/": consolePage };
