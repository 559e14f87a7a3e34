/**
 * The last results of each job (2.7.9 kept only `last_result`; the dashboard shows the latest
 * `message`). Kept in memory, newest last, at most `limit` per job; forgotten with the job.
 */

/** A job result as the API shows it. */
export interface JobResultRecord {
  success: boolean;
  data: unknown;
  message: string;
  timestamp: string;
}

/** Results kept per job by default. */
export const DEFAULT_JOB_RESULTS = 20;

export class JobHistory {
  private readonly byName = new Map<string, JobResultRecord[]>();
  constructor(private readonly limit = DEFAULT_JOB_RESULTS) {}

  /** Records a result of job `name` (names are case-insensitive, as plugin names are). */
  add(name: string, r: JobResultRecord): void {
    const key = name.toLowerCase();
    const list = this.byName.get(key) ?? [];
    list.push(r);
    if (list.length > this.limit) list.splice(0, list.length - this.limit);
    this.byName.set(key, list);
  }

  /** The results of `name`, newest last (empty when it never ran). */
  get(name: string): JobResultRecord[] {
    return [...(this.byName.get(name.toLowerCase()) ?? [])];
  }

  /** The latest result, or null. */
  last(name: string): JobResultRecord | null {
    return this.byName.get(name.toLowerCase())?.at(-1) ?? null;
  }

  /** Forgets a removed job. */
  forget(name: string): void {
    this.byName.delete(name.toLowerCase());
  }
}
