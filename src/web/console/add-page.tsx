/**
 * Add a plugin from a git URL; shows the validation steps as the server completes them (Server-
 * Sent Events of `GET /api/v1/plugins/{name}/progress`, opened before the add is posted) and, on
 * refusal, the failing one.
 */
import { useState } from "preact/hooks";
import { PIPELINE_STEPS } from "../../plugins/types.ts";
import { api } from "./client.ts";

interface Step {
  step: string;
  ok: boolean;
  message: string;
}
interface AddAnswer {
  ok: boolean;
  message: string;
  validation?: { ok: boolean; failedStep?: string; message: string; steps: Step[] };
}

function Field(props: {
  id: string;
  label: string;
  value: string;
  onInput: (v: string) => void;
  required?: boolean;
  hint?: string;
}) {
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        name={props.id}
        type="text"
        value={props.value}
        required={props.required}
        aria-describedby={props.hint ? `${props.id}-hint` : undefined}
        onInput={(e) => props.onInput(e.currentTarget.value)}
      />
      {props.hint && (
        <small id={`${props.id}-hint`} class="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

function Steps({ answer }: { answer: AddAnswer }) {
  const steps = answer.validation?.steps ?? [];
  return (
    <section
      class={answer.ok ? "outcome ok" : "outcome failed"}
      aria-labelledby="outcome-title"
      data-outcome={answer.ok ? "ok" : "failed"}
    >
      <h2 id="outcome-title">{answer.ok ? "Added" : "Refused"}</h2>
      <p role="alert">{answer.message}</p>
      {answer.validation?.failedStep && (
        <p class="failed-step" data-field="failed-step">
          Failing step: <strong>{answer.validation.failedStep}</strong>
        </p>
      )}
      <ol class="steps">
        {steps.map((s) => (
          <li key={s.step} class={s.ok ? "ok" : "failed"} data-step={s.step}>
            <span aria-hidden="true">{s.ok ? "✓" : "✗"}</span> <strong>{s.step}</strong> {s.message}
          </li>
        ))}
      </ol>
    </section>
  );
}

interface FormState {
  kind: "task" | "job";
  name: string;
  url: string;
  branch: string;
  path: string;
  params: string;
}

/** The request body of the form, or the reason it cannot be sent. */
function requestBody(f: FormState): Record<string, unknown> | string {
  const body: Record<string, unknown> = { name: f.name, git_url: f.url };
  if (f.branch !== "") body.branch = f.branch;
  if (f.path !== "") body.path = f.path;
  if (f.params.trim() !== "") {
    try {
      body.parameters = JSON.parse(f.params);
    } catch (err) {
      return `Parameters are not JSON: ${(err as Error).message}`;
    }
  }
  return body;
}

/** Opens the add's progress stream; resolves once it is open (or failed: the add goes on). */
function watchProgress(name: string, onStep: (s: Step) => void): Promise<EventSource> {
  const es = new EventSource(`/api/v1/plugins/${encodeURIComponent(name)}/progress`);
  es.addEventListener("step", (ev) => onStep(JSON.parse((ev as MessageEvent).data) as Step));
  // The server ends the stream after `done`: no reconnection.
  es.addEventListener("done", () => es.close());
  return new Promise((ok) => {
    es.onopen = () => ok(es);
    es.onerror = () => {
      if (es.readyState !== EventSource.OPEN) es.close();
      ok(es);
    };
  });
}

/** The steps done so far of the add in flight, then the ones still to come. */
function LiveSteps({ done }: { done: Step[] }) {
  const seen = new Set(done.map((s) => s.step));
  return (
    <ol class="steps live" aria-label="Validation steps" aria-live="polite" data-live-steps="">
      {done.map((s) => (
        <li key={s.step} class={s.ok ? "ok" : "failed"} data-step={s.step}>
          <span aria-hidden="true">{s.ok ? "✓" : "✗"}</span> <strong>{s.step}</strong> {s.message}
        </li>
      ))}
      {PIPELINE_STEPS.filter((s) => s !== "request" && !seen.has(s)).map((s, i) => (
        // The first step not yet reported is the one the server is on.
        <li key={s} class="pending" aria-current={i === 0 ? "step" : undefined}>
          {s}
          {i === 0 ? " …" : ""}
        </li>
      ))}
    </ol>
  );
}

function AddForm(props: {
  f: FormState;
  set: (patch: Partial<FormState>) => void;
  busy: boolean;
  onSubmit: (e: Event) => void;
}) {
  const { f, set, busy } = props;
  return (
    <form class="add" onSubmit={props.onSubmit} aria-busy={busy}>
      <fieldset>
        <legend>Kind</legend>
        {(["task", "job"] as const).map((k) => (
          <label key={k} class="radio">
            <input
              type="radio"
              name="kind"
              value={k}
              checked={f.kind === k}
              onChange={() => set({ kind: k })}
            />{" "}
            {k}
          </label>
        ))}
      </fieldset>
      <Field
        id="name"
        label="Name"
        value={f.name}
        onInput={(v) => set({ name: v })}
        required
        hint="A-Z a-z 0-9 _ -"
      />
      <Field
        id="git_url"
        label="Git URL"
        value={f.url}
        onInput={(v) => set({ url: v })}
        required
        hint="https://… or file:///…"
      />
      <Field
        id="branch"
        label="Branch"
        value={f.branch}
        onInput={(v) => set({ branch: v })}
        hint="default branch when empty"
      />
      <Field
        id="path"
        label="Path"
        value={f.path}
        onInput={(v) => set({ path: v })}
        hint="sub-directory of the repository"
      />
      <div class="field">
        <label for="parameters">Parameters (JSON object)</label>
        <textarea
          id="parameters"
          name="parameters"
          rows={4}
          value={f.params}
          placeholder='{"interval": 0.5}'
          onInput={(e) => set({ params: e.currentTarget.value })}
        />
      </div>
      <button type="submit" disabled={busy}>
        {busy ? "Adding…" : `Add ${f.kind}`}
      </button>
    </form>
  );
}

export function AddPage() {
  const [f, setF] = useState<FormState>({
    kind: "task",
    name: "",
    url: "",
    branch: "",
    path: "",
    params: "",
  });
  const set = (patch: Partial<FormState>) => setF((prev) => ({ ...prev, ...patch }));
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<AddAnswer | null>(null);
  const [added, setAdded] = useState("");
  const [live, setLive] = useState<Step[]>([]);
  const submit = async (e: Event) => {
    e.preventDefault();
    const body = requestBody(f);
    if (typeof body === "string") {
      setAnswer({ ok: false, message: body });
      return;
    }
    setBusy(true);
    setAnswer(null);
    setLive([]);
    const es = await watchProgress(f.name, (s) => setLive((prev) => [...prev, s]));
    try {
      const r = await api<AddAnswer>("POST", `/${f.kind}s`, body);
      setAnswer(r.body);
      setAdded(r.body.ok ? f.name : "");
    } finally {
      es.close();
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="add-title">
      <h1 id="add-title">Add a plugin</h1>
      <AddForm f={f} set={set} busy={busy} onSubmit={submit} />
      {busy && <LiveSteps done={live} />}
      {answer && <Steps answer={answer} />}
      {added !== "" && (
        <p>
          <a href={`#/plugin/${encodeURIComponent(added)}`}>Open {added}</a>
        </p>
      )}
    </section>
  );
}
