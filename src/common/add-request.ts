/**
 * The one schema of a request to add a plugin. The REST layer validates `POST /tasks` and
 * `POST /jobs` bodies with {@link AddRequestBody} (and documents it in OpenAPI); the config file's
 * plugin list takes its keys and field checks from {@link AddRequestSchema}; the controller runs
 * {@link addRequestProblem} on whatever reaches it (REST, config file, `iocmng run`). Each field
 * carries `x-expected`, the words an error uses for what the field must hold.
 *
 * Checks a JSON Schema cannot express (what git accepts as a URL or branch, line breaks in a token)
 * run after the schema, in {@link addRequestProblem}. A leaf module apart from TypeBox.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { checkBranch, checkGitUrl } from "./git-url.ts";
import { ENV_NAME_PATTERN, PLUGIN_NAME_PATTERN } from "./names.ts";
import { isPlainObject } from "./object.ts";
import { show } from "./text.ts";

/** Longest accepted `path` (what the loader resolves inside the clone). */
export const MAX_PLUGIN_PATH = 1024;

/** A plugin name (body field or path parameter). */
export const PluginName = Type.String({
  pattern: PLUGIN_NAME_PATTERN,
  description: "Plugin name: 1 to 128 of A-Z a-z 0-9 _ -",
  examples: ["my-monitor"],
  "x-expected": "a plugin name of 1..128 letters, digits, '_' or '-'",
});

/** `task` or `job`. */
export const PluginKindSchema = Type.Union([Type.Literal("task"), Type.Literal("job")], {
  "x-expected": "'task' or 'job'",
});

/** The fields of an add request, in the order errors and listings name them. */
const fields = {
  name: PluginName,
  kind: PluginKindSchema,
  git_url: Type.String({
    minLength: 1,
    maxLength: 4096,
    description: "https://, ssh://, scp-style user@host:path or file:// URL of the repository",
    examples: ["https://github.com/user/my-monitor-task.git"],
    "x-expected": "a git URL (https://, ssh://, user@host:path or file://)",
  }),
  branch: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      description: "Branch or tag to check out",
      "x-expected": "a non-empty string of at most 255 characters",
    }),
  ),
  path: Type.Optional(
    Type.String({
      maxLength: 4096,
      description: "Sub-directory of the repository holding the plugin",
      "x-expected": "a string",
    }),
  ),
  parameters: Type.Optional(
    Type.Record(Type.String(), Type.Unknown(), {
      description: "Parameters overriding the ones of the plugin's config.yaml",
      "x-expected": "a mapping",
    }),
  ),
  auto_start: Type.Optional(
    Type.Boolean({
      description: "Start the plugin right after loading (default true)",
      "x-expected": "true or false",
    }),
  ),
  pat_env: Type.Optional(
    Type.String({
      pattern: ENV_NAME_PATTERN,
      description: "Name of an environment variable of the server holding the token",
      "x-expected": "the name of an environment variable (e.g. GIT_TOKEN)",
    }),
  ),
  pat: Type.Optional(
    Type.String({
      maxLength: 4096,
      description: "Personal access token for a private https repository; never stored or echoed",
      "x-expected": "a string of at most 4096 characters",
      "x-secret": true,
    }),
  ),
};

/** A whole add request, `kind` included (what the controller takes). */
export const AddRequestSchema = Type.Object(fields, { additionalProperties: false });
/** A request to add a plugin. `pat` lives in memory only: never logged or written. */
export type AddRequest = Static<typeof AddRequestSchema>;

/** Body of `POST /tasks` and `POST /jobs`: the request without `kind` (the route gives it). */
export const AddRequestBody = Type.Omit(AddRequestSchema, ["kind"], {
  additionalProperties: false,
});
export type AddRequestBody = Static<typeof AddRequestBody>;

/** Keys of a plugin entry in the config file: everything but the token itself (`pat_env` names it). */
export const DECLARED_PLUGIN_KEYS = (Object.keys(fields) as Array<keyof typeof fields>).filter(
  (k) => k !== "pat",
);
/** A plugin declared in the config file. */
export type DeclaredPlugin = Omit<AddRequest, "pat">;

/** What is wrong with a request: the field (or "" for the whole) and a readable message. */
export interface RequestProblem {
  field: string;
  /** `<field>: expected …, got …` or the specific rule broken (never a token's value). */
  message: string;
  /** The `x-expected` text of the field when the value has the wrong shape. */
  expected?: string;
  /** The offending value, for callers that render it themselves (undefined for secrets). */
  got?: unknown;
}

function shapeProblem(field: string, schema: TSchema, v: unknown): RequestProblem | null {
  if (Value.Check(schema, v)) return null;
  const expected = String(schema["x-expected"] ?? "a valid value");
  const secret = schema["x-secret"] === true;
  return {
    field,
    expected,
    message: `${field}: expected ${expected}${secret ? "" : `, got ${show(v)}`}`,
    ...(secret ? {} : { got: v }),
  };
}

/**
 * The first problem of an add request, or null when it is acceptable: each present field against
 * its schema (required ones must be present), then git's rules for the URL and branch, a token
 * without line breaks and a `path` the loader can take. Unknown fields are the caller's business
 * (REST refuses them by schema, the config file with a "did you mean").
 */
export function addRequestProblem(req: unknown): RequestProblem | null {
  if (!isPlainObject(req)) return { field: "", message: "request must be an object" };
  const required = new Set<string>(AddRequestSchema.required ?? []);
  for (const [field, schema] of Object.entries(fields)) {
    const v = req[field];
    if (v === undefined) {
      if (!required.has(field)) continue;
      return shapeProblem(field, schema, v);
    }
    const p = shapeProblem(field, schema, v);
    if (p !== null) return p;
  }
  const url = checkGitUrl(req.git_url);
  if (url !== null) return { field: "git_url", message: url };
  const branch = checkBranch(req.branch);
  if (branch !== null) return { field: "branch", message: branch };
  if (typeof req.pat === "string" && /[\r\n\0]/.test(req.pat)) {
    return { field: "pat", message: "pat contains line breaks" };
  }
  if (typeof req.path === "string" && req.path.length > MAX_PLUGIN_PATH) {
    return {
      field: "path",
      message: `path must be a string of at most ${MAX_PLUGIN_PATH} characters`,
    };
  }
  return null;
}
