/** Preact hooks shared by the console's pages. */
import { useEffect, useState } from "preact/hooks";
import { type ApiAnswer, api, type PvData, pvws } from "./client.ts";

/** GETs `path` now and every `ms` (paused while the tab is hidden); `reload()` fetches at once. */
export function usePoll<T>(path: string | null, ms: number) {
  const [data, setData] = useState<ApiAnswer<T> | null>(null);
  const [tick, setTick] = useState(0);
  // Another path (another plugin's page): drop the previous answer at once, so nothing acts on
  // data of the page before (a Remove button must never remove the plugin shown before).
  const [shownPath, setShownPath] = useState(path);
  if (shownPath !== path) {
    setShownPath(path);
    setData(null);
  }
  useEffect(() => {
    if (path === null) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      if (document.visibilityState !== "hidden") {
        try {
          const r = await api<T>("GET", path);
          if (!stopped) setData(r);
        } catch {
          // Server unreachable: keep the last data; the header shows the socket state.
        }
      }
      if (!stopped) timer = setTimeout(run, ms);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [path, ms, tick]);
  return { data, reload: () => setTick((x) => x + 1) };
}

/** Live data of PVs by name, through the shared PV Web Socket. */
export function usePvs(names: string[]): Record<string, PvData> {
  const [values, setValues] = useState<Record<string, PvData>>({});
  const key = names.join("\n");
  useEffect(() => {
    const offs = names.map((n) =>
      pvws.subscribe(n, (d) => setValues((prev) => ({ ...prev, [n]: d }))),
    );
    return () => {
      for (const off of offs) off();
    };
    // `key` stands for `names` (a new array each render).
  }, [key]);
  return values;
}

/** Whether the PV Web Socket is up. */
export function usePvwsState(): boolean {
  const [up, setUp] = useState(pvws.connected);
  useEffect(() => pvws.onState(setUp), []);
  return up;
}
