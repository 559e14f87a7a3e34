import { Elysia } from "elysia";

/** Dependencies the HTTP layer needs; grows as features land. */
export interface AppDeps {
  version: string;
}

/** Builds the REST application without listening, so tests can call `app.handle(request)`. */
export function createApp(deps: AppDeps) {
  return new Elysia({ prefix: "/api/v1" }).get("/health", () => ({
    status: "healthy",
    version: deps.version,
    tasks_count: 0,
    jobs_count: 0,
  }));
}
