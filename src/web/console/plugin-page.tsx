/**
 * One plugin: its PVs live (units, alarm colours, limits), writes of inputs, ENABLE/RUN,
 * restart and remove, a job's runs with their results, and the plugin's log lines live.
 */
import { useEffect, useState } from "preact/hooks";
import { api, formatValue, type PvData, pvws, severityClass } from "./client.ts";
import { DisplayPreview } from "./display-preview.tsx";
import { usePoll, usePvs } from "./hooks.ts";
import type { ConsolePlugin } from "./plugins-page.tsx";
import { DataTable } from "./table.tsx";

interface PluginPv {
  name: string;
  fullName: string;
  kind: string;
  writable: boolean;
}
interface PluginDetail extends ConsolePlugin {
  git_url: string;
  branch?: string;
  path?: string;
  parameters: Record<string, unknown>;
  pvs: PluginPv[];
}
interface LogLine {
  seq: number;
  time: number;
  level: string;
  msg: string;
}
/** One kept run of a job, as `GET /jobs/{name}/results` (the 2.7.9 job history) lists it. */
interface KeptResult {
  success: boolean;
  message: string;
  data: unknown;
  timestamp: string;
}

function limits(d: PvData | undefined): string {
  if (d === undefined) return "";
  const parts: string[] = [];
  if (d.min !== undefined || d.max !== undefined) parts.push(`${d.min ?? ""} … ${d.max ?? ""}`);
  if (d.alarm_low !== undefined || d.alarm_high !== undefined) {
    parts.push(`LOLO ${d.alarm_low ?? "—"} HIHI ${d.alarm_high ?? "—"}`);
  }
  if (d.warn_low !== undefined || d.warn_high !== undefined) {
    parts.push(`LOW ${d.warn_low ?? "—"} HIGH ${d.warn_high ?? "—"}`);
  }
  return parts.join("; ");
}

function PvInput({ pv, d }: { pv: PluginPv; d: PvData | undefined }) {
  const [draft, setDraft] = useState("");
  const id = `in-${pv.name}`;
  if (d?.readonly !== false) return null;
  if (d.labels !== undefined && d.labels.length > 0) {
    return (
      <label class="inline">
        <span class="sr-only">New value of {pv.name}</span>
        <select
          data-pv-input={pv.name}
          value={String(d.value ?? 0)}
          onChange={(e) => pvws.write(pv.fullName, Number(e.currentTarget.value))}
        >
          {d.labels.map((l, i) => (
            <option key={l} value={String(i)}>
              {l}
            </option>
          ))}
        </select>
      </label>
    );
  }
  const numeric = d.vtype !== "VString";
  return (
    <form
      class="inline"
      onSubmit={(e) => {
        e.preventDefault();
        pvws.write(pv.fullName, numeric && draft.trim() !== "" ? Number(draft) : draft);
        setDraft("");
      }}
    >
      <label for={id} class="sr-only">
        New value of {pv.name}
      </label>
      {numeric ? (
        <input
          id={id}
          data-pv-input={pv.name}
          type="number"
          step="any"
          min={d.min}
          max={d.max}
          value={draft}
          onInput={(e) => setDraft(e.currentTarget.value)}
          placeholder={formatValue(d)}
        />
      ) : (
        <input
          id={id}
          data-pv-input={pv.name}
          type="text"
          value={draft}
          onInput={(e) => setDraft(e.currentTarget.value)}
          placeholder={formatValue(d)}
        />
      )}
      <button type="submit">Set</button>
    </form>
  );
}

const PV_COLUMNS = ["PV", "Value", "Units", "Severity", "Limits", "Write"];

function PvTable({ pvs }: { pvs: PluginPv[] }) {
  const live = usePvs(pvs.map((p) => p.fullName));
  return (
    <DataTable class="pvs" caption="Process variables, live" columns={PV_COLUMNS}>
      {pvs.map((pv) => {
        const d = live[pv.fullName];
        return (
          <tr key={pv.fullName} data-pv={pv.name}>
            <th scope="row" title={pv.fullName}>
              {pv.name}
              <div class="sub">{pv.fullName}</div>
            </th>
            <td class={`value ${severityClass(d)}`} data-field="value">
              {formatValue(d)}
            </td>
            <td>{d?.units ?? ""}</td>
            <td>{d?.connected === false ? "DISCONNECTED" : (d?.severity ?? "")}</td>
            <td class="limits">{limits(d)}</td>
            <td>
              <PvInput pv={pv} d={d} />
            </td>
          </tr>
        );
      })}
    </DataTable>
  );
}

function Logs({ name }: { name: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  useEffect(() => {
    setLines([]);
    const es = new EventSource(`/api/v1/plugins/${encodeURIComponent(name)}/logs/stream`);
    es.addEventListener("log", (ev) => {
      const line = JSON.parse((ev as MessageEvent).data) as LogLine;
      setLines((prev) => [...prev.slice(-199), line]);
    });
    return () => es.close();
  }, [name]);
  return (
    <section aria-labelledby="logs-title">
      <h2 id="logs-title">Recent log lines</h2>
      <ol class="logs" aria-live="polite" aria-relevant="additions">
        {lines.map((l) => (
          <li key={l.seq} class={`log-${l.level}`}>
            <time dateTime={new Date(l.time).toISOString()}>
              {new Date(l.time).toLocaleTimeString()}
            </time>{" "}
            <span class="level">{l.level}</span> {l.msg}
          </li>
        ))}
        {lines.length === 0 && <li class="empty">No lines yet.</li>}
      </ol>
    </section>
  );
}

function JobRuns({ name }: { name: string }) {
  const { data, reload } = usePoll<{ results: KeptResult[] }>(
    `/jobs/${encodeURIComponent(name)}/results`,
    10_000,
  );
  const [running, setRunning] = useState(false);
  const [last, setLast] = useState<string>("");
  const run = async () => {
    setRunning(true);
    const r = await api<{ ok: boolean; message: string; result?: { data?: unknown } }>(
      "POST",
      `/jobs/${encodeURIComponent(name)}/run`,
    );
    setRunning(false);
    setLast(
      `${r.body.ok ? "Succeeded" : "Failed"}: ${r.body.message}${
        r.body.result ? ` — ${JSON.stringify(r.body.result.data)}` : ""
      }`,
    );
    reload();
  };
  return (
    <section aria-labelledby="runs-title">
      <h2 id="runs-title">Runs</h2>
      <button type="button" onClick={run} disabled={running} data-action="run-job">
        {running ? "Running…" : "Run job"}
      </button>
      <p class="result" role="status" data-field="job-result">
        {last}
      </p>
      <ol class="results">
        {/* The history lists the newest last; the newest is shown first. */}
        {[...(data?.body.results ?? [])].reverse().map((r, i) => (
          <li key={`${r.timestamp}-${i}`} class={r.success ? "ok" : "failed"}>
            <time dateTime={r.timestamp}>{new Date(r.timestamp).toLocaleString()}</time>{" "}
            {r.success ? "✓" : "✗"} {r.message} <code>{JSON.stringify(r.data ?? null)}</code>
          </li>
        ))}
      </ol>
    </section>
  );
}

function Actions({ p, onChange }: { p: PluginDetail; onChange: (msg: string) => void }) {
  const live = usePvs(p.kind === "task" ? [`${p.prefix}:ENABLE`] : []);
  const enable = live[`${p.prefix}:ENABLE`];
  const plural = `${p.kind}s`;
  const restart = async () => {
    onChange("Restarting…");
    const r = await api<{ message: string }>("POST", `/${plural}/${p.name}/restart`);
    onChange(r.body.message);
  };
  const remove = async () => {
    if (!confirm(`Remove ${p.kind} ${p.name}? Its PVs disappear.`)) return;
    const r = await api<{ message: string }>("DELETE", `/${plural}/${p.name}`);
    if (r.status === 200) location.hash = "#/";
    else onChange(r.body.message);
  };
  return (
    <fieldset class="actions">
      <legend class="sr-only">Plugin actions</legend>
      {p.kind === "task" && (
        <button
          type="button"
          aria-pressed={enable?.value === 1}
          onClick={() => pvws.write(`${p.prefix}:ENABLE`, enable?.value === 1 ? 0 : 1)}
          data-action="enable"
        >
          ENABLE: {enable?.text ?? "…"}
        </button>
      )}
      {p.kind === "task" && p.mode === "triggered" && (
        <button type="button" onClick={() => pvws.write(`${p.prefix}:RUN`, 1)} data-action="run">
          RUN
        </button>
      )}
      <button type="button" onClick={restart} data-action="restart">
        Restart
      </button>
      <button type="button" class="danger" onClick={remove} data-action="remove">
        Remove
      </button>
    </fieldset>
  );
}

export function PluginPage({ name }: { name: string }) {
  const list = usePoll<{ plugins: ConsolePlugin[] }>("/console/plugins", 5000);
  const kind = list.data?.body.plugins.find((p) => p.name === name)?.kind;
  const detail = usePoll<PluginDetail>(kind ? `/${kind}s/${encodeURIComponent(name)}` : null, 5000);
  const [note, setNote] = useState("");
  useEffect(() => pvws.onError((m) => setNote(m)), []);
  if (list.data !== null && kind === undefined) {
    return (
      <section>
        <h1>{name}</h1>
        <p>No plugin of that name (it may have been removed).</p>
        <a href="#/">Back to the list</a>
      </section>
    );
  }
  const p = detail.data?.status === 200 ? detail.data.body : undefined;
  if (p === undefined || p.name !== name) return <p>Loading…</p>;
  return (
    <section aria-labelledby="plugin-title">
      <div class="page-head">
        <h1 id="plugin-title">
          {p.name} <span class="sub">{p.kind}</span>
        </h1>
        <Actions p={p} onChange={setNote} />
      </div>
      <p class="note" role="status" data-field="note">
        {note}
      </p>
      <dl class="facts">
        <dt>Source</dt>
        <dd>
          {p.git_url}
          {p.branch ? ` @ ${p.branch}` : ""}
          {p.path ? ` / ${p.path}` : ""}
        </dd>
        <dt>Prefix</dt>
        <dd>{p.prefix}</dd>
        <dt>Parameters</dt>
        <dd>
          <code>{JSON.stringify(p.parameters)}</code>
        </dd>
      </dl>
      <h2>Process variables</h2>
      <PvTable pvs={p.pvs} />
      {p.kind === "job" && <JobRuns name={p.name} />}
      <Logs name={p.name} />
      <DisplayPreview name={p.name} />
    </section>
  );
}
