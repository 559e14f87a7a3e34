/** Add a plugin from a git URL; shows the validation steps and, on refusal, the failing one. */
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

export function AddPage() {
  const [kind, setKind] = useState<"task" | "job">("task");
  const [name, setName] = useState("");
  const [url, setUrl] = useState("");
  const [branch, setBranch] = useState("");
  const [path, setPath] = useState("");
  const [params, setParams] = useState("");
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<AddAnswer | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    let parameters: unknown;
    if (params.trim() !== "") {
      try {
        parameters = JSON.parse(params);
      } catch (err) {
        setAnswer({ ok: false, message: `Parameters are not JSON: ${(err as Error).message}` });
        return;
      }
    }
    const body: Record<string, unknown> = { name, git_url: url };
    if (branch !== "") body.branch = branch;
    if (path !== "") body.path = path;
    if (parameters !== undefined) body.parameters = parameters;
    setBusy(true);
    setAnswer(null);
    try {
      const r = await api<AddAnswer>("POST", `/${kind}s`, body);
      setAnswer(r.body);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="add-title">
      <h1 id="add-title">Add a plugin</h1>
      <form class="add" onSubmit={submit} aria-busy={busy}>
        <fieldset>
          <legend>Kind</legend>
          {(["task", "job"] as const).map((k) => (
            <label key={k} class="radio">
              <input
                type="radio"
                name="kind"
                value={k}
                checked={kind === k}
                onChange={() => setKind(k)}
              />{" "}
              {k}
            </label>
          ))}
        </fieldset>
        <Field
          id="name"
          label="Name"
          value={name}
          onInput={setName}
          required
          hint="A-Z a-z 0-9 _ -"
        />
        <Field
          id="git_url"
          label="Git URL"
          value={url}
          onInput={setUrl}
          required
          hint="https://… or file:///…"
        />
        <Field
          id="branch"
          label="Branch"
          value={branch}
          onInput={setBranch}
          hint="default branch when empty"
        />
        <Field
          id="path"
          label="Path"
          value={path}
          onInput={setPath}
          hint="sub-directory of the repository"
        />
        <div class="field">
          <label for="parameters">Parameters (JSON object)</label>
          <textarea
            id="parameters"
            name="parameters"
            rows={4}
            value={params}
            placeholder='{"interval": 0.5}'
            onInput={(e) => setParams(e.currentTarget.value)}
          />
        </div>
        <button type="submit" disabled={busy}>
          {busy ? "Adding…" : `Add ${kind}`}
        </button>
      </form>
      {busy && (
        <ol class="steps pending" aria-label="Validation steps">
          {PIPELINE_STEPS.map((s) => (
            <li key={s}>{s}</li>
          ))}
        </ol>
      )}
      {answer && <Steps answer={answer} />}
      {answer?.ok && (
        <p>
          <a href={`#/plugin/${encodeURIComponent(name)}`}>Open {name}</a>
        </p>
      )}
    </section>
  );
}
