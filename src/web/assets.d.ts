/**
 * Files embedded with `import path from "…" with { type: "file" }`: Bun gives their path (a
 * `/$bunfs/…` path inside the compiled executable), served with Bun.file.
 */
declare module "*standalone.js" {
  const path: string;
  export default path;
}
