/**
 * A private git host on loopback for token tests: HTTPS (self-signed certificate made with
 * openssl) in front of git's own smart-HTTP CGI, `git http-backend`, refusing every request whose
 * Basic credentials do not carry the expected token. Git trusts the certificate through
 * `http.sslCAInfo` in a `.gitconfig` under `home` — give that directory as HOME to whoever clones.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

/** A running HTTPS git host. */
export interface HttpsGitHost {
  /** `https://127.0.0.1:<port>/<repo>/.git` for a (non-bare) repository directory. */
  urlFor(repoDir: string): string;
  /** A HOME directory whose .gitconfig trusts this host's certificate. */
  home: string;
  /** Authorization headers received (null when absent), in order. */
  authHeaders: Array<string | null>;
  stop(): Promise<void>;
}

async function run(argv: string[], cwd?: string): Promise<void> {
  const p = Bun.spawn(argv, { cwd, stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (${code}): ${err}`);
}

/** Splits a CGI answer into status, headers and body. */
function parseCgi(out: Uint8Array): { status: number; headers: Headers; body: Uint8Array } {
  const text = new TextDecoder("latin1").decode(out.subarray(0, Math.min(out.length, 8192)));
  let end = text.indexOf("\r\n\r\n");
  let sepLen = 4;
  if (end < 0) {
    end = text.indexOf("\n\n");
    sepLen = 2;
  }
  if (end < 0) return { status: 502, headers: new Headers(), body: out };
  const headers = new Headers();
  let status = 200;
  for (const line of text.slice(0, end).split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    const k = line.slice(0, i).trim();
    const v = line.slice(i + 1).trim();
    if (k.toLowerCase() === "status") status = Number.parseInt(v, 10) || 200;
    else headers.append(k, v);
  }
  return { status, headers, body: out.subarray(end + sepLen) };
}

/** Starts the host; every repository it serves must live in `projectRoot`. */
export async function startHttpsGitHost(opts: {
  projectRoot: string;
  token: string;
  user?: string;
}): Promise<HttpsGitHost> {
  const home = await mkdtemp(join(tmpdir(), "iocmng-https-git-"));
  const key = join(home, "key.pem");
  const cert = join(home, "cert.pem");
  await run([
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  await Bun.write(join(home, ".gitconfig"), `[http]\n\tsslCAInfo = ${cert}\n`);
  const expected = `Basic ${btoa(`${opts.user ?? "x-access-token"}:${opts.token}`)}`;
  const authHeaders: Array<string | null> = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { key: Bun.file(key), cert: Bun.file(cert) },
    async fetch(req) {
      const auth = req.headers.get("authorization");
      authHeaders.push(auth);
      if (auth !== expected) {
        return new Response("authentication required\n", {
          status: 401,
          headers: { "WWW-Authenticate": 'Basic realm="iocmng test"' },
        });
      }
      const u = new URL(req.url);
      const body = req.method === "POST" ? new Uint8Array(await req.arrayBuffer()) : undefined;
      const cgi = Bun.spawn(["git", "http-backend"], {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          GIT_PROJECT_ROOT: opts.projectRoot,
          GIT_HTTP_EXPORT_ALL: "1",
          REQUEST_METHOD: req.method,
          PATH_INFO: decodeURIComponent(u.pathname),
          QUERY_STRING: u.search.slice(1),
          CONTENT_TYPE: req.headers.get("content-type") ?? "",
          CONTENT_LENGTH: String(body?.length ?? 0),
          HTTP_CONTENT_ENCODING: req.headers.get("content-encoding") ?? "",
          GIT_PROTOCOL: req.headers.get("git-protocol") ?? "",
          REMOTE_USER: "x-access-token",
          REMOTE_ADDR: "127.0.0.1",
        },
        stdin: body ?? "ignore",
        stdout: "pipe",
        stderr: "ignore",
      });
      const out = new Uint8Array(await new Response(cgi.stdout).arrayBuffer());
      await cgi.exited;
      const r = parseCgi(out);
      return new Response(r.body, { status: r.status, headers: r.headers });
    },
  });
  return {
    urlFor: (repoDir) => {
      if (dirname(repoDir) !== opts.projectRoot) {
        throw new Error(`${repoDir} is not directly inside ${opts.projectRoot}`);
      }
      return `https://127.0.0.1:${server.port}/${basename(repoDir)}/.git`;
    },
    home,
    authHeaders,
    async stop() {
      server.stop(true);
      await rm(home, { recursive: true, force: true });
    },
  };
}
