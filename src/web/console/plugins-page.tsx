/** The plugin list: one row per plugin, STATUS/MESSAGE/CYCLE_COUNT live over PVWS. */
import { formatValue, type PvData, severityClass } from "./client.ts";
import { usePoll, usePvs } from "./hooks.ts";
import { DataTable } from "./table.tsx";

export interface ConsolePlugin {
  name: string;
  kind: "task" | "job";
  mode?: string;
  status: string;
  message: string;
  cycleCount?: number;
  prefix: string;
  running: boolean;
  pvCount: number;
  errors: number;
  lastError?: { time: number; msg: string };
  /** The plugin's OS process (absent when none runs). */
  process?: { pid: number; rssBytes: number; cpuSeconds: number };
}

export interface Resources {
  rssBytes: number;
  heapUsedBytes: number;
  cpuSeconds: number;
  uptimeSeconds: number;
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

function statusClass(d: PvData | undefined, fallback: string): string {
  const s = d?.text ?? fallback;
  if (s === "ERROR" || s === "FAILED") return "sev-major";
  if (s === "PAUSED" || s === "INIT" || s === "END") return "sev-minor";
  return severityClass(d);
}

function Row({ p, live }: { p: ConsolePlugin; live: Record<string, PvData> }) {
  const status = live[`${p.prefix}:STATUS`];
  const message = live[`${p.prefix}:MESSAGE`];
  const cycles = live[`${p.prefix}:CYCLE_COUNT`];
  return (
    <tr data-plugin={p.name}>
      <th scope="row">
        <a href={`#/plugin/${encodeURIComponent(p.name)}`}>{p.name}</a>
      </th>
      <td>{p.kind}</td>
      <td>{p.mode ?? "—"}</td>
      <td>
        <span class={`badge ${statusClass(status, p.status)}`} data-field="status">
          {status?.text ?? p.status}
        </span>
      </td>
      <td class="message" data-field="message">
        {message ? formatValue(message) : p.message}
      </td>
      <td class="num" data-field="cycles">
        {p.kind === "task" ? (cycles ? formatValue(cycles) : String(p.cycleCount ?? 0)) : "—"}
      </td>
      <td class="error" title={p.lastError?.msg}>
        {p.lastError ? (
          <>
            <time dateTime={new Date(p.lastError.time).toISOString()}>
              {new Date(p.lastError.time).toLocaleTimeString()}
            </time>{" "}
            {p.lastError.msg}
          </>
        ) : (
          "—"
        )}
      </td>
      <td class="num" data-field="resources">
        {p.process ? (
          <>
            <span data-field="rss">{mib(p.process.rssBytes)}</span>,{" "}
            <span data-field="cpu">{p.process.cpuSeconds.toFixed(1)} s CPU</span>{" "}
            <small class="hint">pid {p.process.pid}</small>
            <br />
          </>
        ) : null}
        {p.pvCount} PVs, {p.errors} errors
      </td>
      <td>
        <span class={p.running ? "dot up" : "dot down"} aria-hidden="true" />
        {p.running ? "running" : "stopped"}
      </td>
    </tr>
  );
}

const PLUGIN_COLUMNS = [
  "Name",
  "Kind",
  "Mode",
  "STATUS",
  "MESSAGE",
  "CYCLE_COUNT",
  "Last error",
  "Resources",
  "Live",
];

export function PluginsPage() {
  const { data } = usePoll<{ plugins: ConsolePlugin[]; resources: Resources }>(
    "/console/plugins",
    2000,
  );
  const plugins = data?.body.plugins ?? [];
  const names: string[] = [];
  for (const p of plugins) {
    names.push(`${p.prefix}:STATUS`, `${p.prefix}:MESSAGE`);
    if (p.kind === "task") names.push(`${p.prefix}:CYCLE_COUNT`);
  }
  const live = usePvs(names);
  const r = data?.body.resources;
  return (
    <section aria-labelledby="plugins-title">
      <div class="page-head">
        <h1 id="plugins-title">Plugins</h1>
        <a class="button" href="#/add">
          Add plugin
        </a>
      </div>
      {r && (
        <p class="resources">
          Server: {mib(r.rssBytes)} resident, heap {mib(r.heapUsedBytes)}, CPU{" "}
          {r.cpuSeconds.toFixed(1)} s over {Math.round(r.uptimeSeconds)} s up. Each plugin runs in a
          process of its own: its memory and CPU time are in its row.
        </p>
      )}
      {data === null ? (
        <p>Loading…</p>
      ) : plugins.length === 0 ? (
        <p class="empty">No plugins loaded. Add one from a git repository.</p>
      ) : (
        <DataTable class="plugins" caption="Loaded plugins, live" columns={PLUGIN_COLUMNS}>
          {plugins.map((p) => (
            <Row key={p.name} p={p} live={live} />
          ))}
        </DataTable>
      )}
    </section>
  );
}
