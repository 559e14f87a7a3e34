/**
 * A preview of the plugin's generated Phoebus screen (display.bob): the widgets drawn at their
 * positions with live values, and a link to download the file for Phoebus.
 */
import { useEffect, useState } from "preact/hooks";
import { formatValue, severityClass } from "./client.ts";
import { usePvs } from "./hooks.ts";

interface Widget {
  type: string;
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  text: string;
  pv: string;
}

/** Reads the widgets of a .bob document (top level and inside groups, offset by the group). */
export function parseBob(xml: string): { width: number; height: number; widgets: Widget[] } {
  const doc = new DOMParser().parseFromString(xml, "application/xml");
  const num = (el: Element, tag: string) =>
    Number(el.querySelector(`:scope > ${tag}`)?.textContent ?? 0);
  const str = (el: Element, tag: string) => el.querySelector(`:scope > ${tag}`)?.textContent ?? "";
  const widgets: Widget[] = [];
  const walk = (parent: Element, dx: number, dy: number) => {
    for (const el of Array.from(parent.children)) {
      if (el.tagName !== "widget") continue;
      const w: Widget = {
        type: el.getAttribute("type") ?? "",
        name: str(el, "name"),
        x: num(el, "x") + dx,
        y: num(el, "y") + dy,
        width: num(el, "width") || 100,
        height: num(el, "height") || 20,
        text: str(el, "text"),
        pv: str(el, "pv_name"),
      };
      widgets.push(w);
      if (w.type === "group") walk(el, w.x, w.y);
    }
  };
  const root = doc.documentElement;
  walk(root, 0, 0);
  return { width: num(root, "width") || 800, height: num(root, "height") || 600, widgets };
}

function Screen({ xml }: { xml: string }) {
  const { width, height, widgets } = parseBob(xml);
  const live = usePvs(widgets.filter((w) => w.pv !== "").map((w) => w.pv));
  return (
    <div
      class="bob"
      style={{ width: `${width}px`, height: `${height}px` }}
      role="img"
      aria-label="Screen preview"
    >
      {widgets.map((w) => {
        const d = live[w.pv];
        const style = {
          left: `${w.x}px`,
          top: `${w.y}px`,
          width: `${w.width}px`,
          height: `${w.height}px`,
        };
        const body =
          w.type === "label" || w.type === "action_button" || w.type === "group"
            ? w.text || w.name
            : w.type === "led"
              ? ""
              : formatValue(d);
        const on = w.type === "led" && d?.value === 1;
        return (
          <div
            key={`${w.name}-${w.x}-${w.y}`}
            class={`w w-${w.type} ${w.pv ? severityClass(d) : ""} ${on ? "on" : ""}`}
            style={style}
            title={w.pv || w.name}
          >
            {body}
          </div>
        );
      })}
    </div>
  );
}

export function DisplayPreview({ name }: { name: string }) {
  const url = `/api/v1/plugins/${encodeURIComponent(name)}/display.bob`;
  const [xml, setXml] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    fetch(url)
      .then((r) => (r.ok ? r.text() : null))
      .then((t) => live && setXml(t))
      .catch(() => live && setXml(null));
    return () => {
      live = false;
    };
  }, [url]);
  return (
    <section aria-labelledby="screen-title">
      <h2 id="screen-title">Phoebus screen</h2>
      <p>
        <a href={url} download={`${name}.bob`}>
          Download {name}.bob
        </a>{" "}
        for Phoebus Display Builder (<a href="/api/v1/display.bob">overview of all plugins</a>).
      </p>
      {xml !== null && <Screen xml={xml} />}
    </section>
  );
}
