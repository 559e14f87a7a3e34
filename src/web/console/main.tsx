/**
 * The operator console: a Preact single-page app bundled into the executable (see
 * docs/console.md). Hash routes: `#/` plugins, `#/plugin/NAME`, `#/add`.
 */
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { AddPage } from "./add-page.tsx";
import { getToken, setToken } from "./client.ts";
import { usePvwsState } from "./hooks.ts";
import { PluginPage } from "./plugin-page.tsx";
import { PluginsPage } from "./plugins-page.tsx";

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return hash;
}

/** A body class remembered in localStorage (theme, wall layout). */
function usePref(key: string, initial: string): [string, (v: string) => void] {
  const [v, setV] = useState(localStorage.getItem(key) ?? initial);
  useEffect(() => {
    localStorage.setItem(key, v);
  }, [key, v]);
  return [v, setV];
}

function TokenBox() {
  const [token, setLocal] = useState(getToken());
  return (
    <form
      class="token"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(token.trim());
      }}
    >
      <label for="api-token">API token</label>
      <input
        id="api-token"
        type="password"
        autocomplete="off"
        value={token}
        onInput={(e) => setLocal(e.currentTarget.value)}
      />
      <button type="submit">Use</button>
    </form>
  );
}

function App() {
  const hash = useHash();
  const up = usePvwsState();
  const [theme, setTheme] = usePref("iocmng.theme", "dark");
  const [layout, setLayout] = usePref("iocmng.layout", "laptop");
  useEffect(() => {
    document.body.className = `theme-${theme} layout-${layout}`;
  }, [theme, layout]);
  const m = /^#\/plugin\/(.+)$/.exec(hash);
  const page = m ? (
    <PluginPage name={decodeURIComponent(m[1] ?? "")} />
  ) : hash === "#/add" ? (
    <AddPage />
  ) : (
    <PluginsPage />
  );
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <nav aria-label="Main">
          <a class="brand" href="#/">
            iocmng
          </a>
          <a href="#/" aria-current={m === null && hash !== "#/add" ? "page" : undefined}>
            Plugins
          </a>
          <a href="#/add" aria-current={hash === "#/add" ? "page" : undefined}>
            Add
          </a>
          <a href="/api/v1/docs">API docs</a>
          <a href="/metrics">Metrics</a>
        </nav>
        <div class="tools">
          <span class={up ? "dot up" : "dot down"} aria-hidden="true" />
          <span class="sr-only">Live values</span>
          <span data-field="pvws">{up ? "live" : "offline"}</span>
          <button
            type="button"
            onClick={() => setLayout(layout === "wall" ? "laptop" : "wall")}
            aria-pressed={layout === "wall"}
          >
            Wall display
          </button>
          <button
            type="button"
            onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
            aria-pressed={theme === "dark"}
          >
            Dark theme
          </button>
          <TokenBox />
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
