/** The 2.7.9 IOCMNG_* variables: honoured or refused with the fix. */
import { expect, test } from "bun:test";
import { readCompatEnv } from "../../src/compat/env.ts";

test("defaults: CORS off, no local_path roots, no boot list", () => {
  expect(readCompatEnv({})).toEqual({
    cors: null,
    localPathRoots: [],
    pluginsConfig: null,
    warnings: [],
  });
});

test("honoured values", () => {
  const e = readCompatEnv({
    IOCMNG_CORS_ORIGINS: "https://dash.example.org, http://localhost:5173/",
    IOCMNG_LOCAL_PATH_ROOTS: "/srv/plugins:/opt/x/../y",
    IOCMNG_PLUGINS_CONFIG: "/etc/iocmng/plugins.yaml",
    IOCMNG_ENABLE_SOFTIOC: "true",
    IOCMNG_PVA: "false",
  });
  expect(e.cors).toEqual({
    any: false,
    list: new Set(["https://dash.example.org", "http://localhost:5173"]),
  });
  expect(e.localPathRoots).toEqual(["/srv/plugins", "/opt/y"]);
  expect(e.pluginsConfig).toBe("/etc/iocmng/plugins.yaml");
  expect(e.warnings).toEqual([]);
  expect(readCompatEnv({ IOCMNG_CORS_ORIGINS: "*" }).cors).toEqual({ any: true });
});

test("IOCMNG_PVA other than false warns that links use CA", () => {
  expect(readCompatEnv({ IOCMNG_PVA: "true" }).warnings[0]).toContain(
    "links and the /pvs proxy use Channel Access",
  );
});

test("refused values name the variable and the fix, all at once", () => {
  expect(() =>
    readCompatEnv({
      IOCMNG_ENABLE_SOFTIOC: "false",
      IOCMNG_CORS_ORIGINS: "dash.example.org",
      IOCMNG_LOCAL_PATH_ROOTS: "rel/dir",
    }),
  ).toThrow(
    /IOCMNG_ENABLE_SOFTIOC=false: running plugins without serving their PVs is not supported.*IOCMNG_CORS_ORIGINS: "dash.example.org" is not an origin.*IOCMNG_LOCAL_PATH_ROOTS: "rel\/dir" is not an absolute path/,
  );
});

import { JobHistory } from "../../src/compat/job-history.ts";

test("job history keeps the last N results per job, newest last", () => {
  const h = new JobHistory(3);
  for (let i = 0; i < 5; i++)
    h.add("Backup", { success: i % 2 === 0, data: i, message: `run ${i}`, timestamp: `t${i}` });
  expect(h.get("backup").map((r) => r.data)).toEqual([2, 3, 4]);
  expect(h.last("BACKUP")?.message).toBe("run 4");
  h.forget("backup");
  expect(h.get("backup")).toEqual([]);
  expect(h.last("backup")).toBeNull();
});
