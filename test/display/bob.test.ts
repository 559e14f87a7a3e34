/**
 * Generated Phoebus screens: well-formed XML (parsed by Python's xml.etree, not by us), only widget
 * types and property names that Phoebus's display model defines, and the right widget per PV.
 */
import { expect, test } from "bun:test";
import { Elysia } from "elysia";
import { overviewScreen, pluginScreen, type ScreenPlugin } from "../../src/display/bob.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { LogRings } from "../../src/web/logring.ts";
import { consoleRoutes } from "../../src/web/routes.ts";

/**
 * From ControlSystemStudio/phoebus app/display/model: WidgetDescriptor types (LabelWidget "label",
 * TextUpdateWidget "textupdate", TextEntryWidget "textentry", ScaledSliderWidget "scaledslider",
 * LEDWidget "led", ComboWidget "combo", BoolButtonWidget "bool_button", ActionButtonWidget
 * "action_button" version 3.0.0) and CommonWidgetProperties / XMLTags names.
 */
const WIDGET_TYPES = new Set([
  "label",
  "textupdate",
  "textentry",
  "scaledslider",
  "led",
  "combo",
  "bool_button",
  "action_button",
]);
const PROPERTIES = new Set([
  "name",
  "x",
  "y",
  "width",
  "height",
  "text",
  "pv_name",
  "show_units",
  "precision",
  "format",
  "horizontal_alignment",
  "minimum",
  "maximum",
  "limits_from_pv",
  "off_label",
  "on_label",
  "labels_from_pv",
  "items_from_pv",
  "actions",
]);
const ACTION_TYPES: Record<string, string[]> = {
  write_pv: ["pv_name", "value", "description"],
  open_display: ["file", "target", "description"],
};

interface ParsedWidget {
  type: string;
  version: string;
  props: Record<string, string>;
  actions: Array<{ type: string; fields: Record<string, string> }>;
}

async function parseBob(xml: string): Promise<{ root: string; widgets: ParsedWidget[] }> {
  const code = `
import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
ws = []
for w in root.iter("widget"):
    props = {c.tag: (c.text or "") for c in w if c.tag not in ("actions", "widget")}
    acts = [{"type": a.get("type"), "fields": {f.tag: (f.text or "") for f in a}} for a in w.iter("action")]
    ws.append({"type": w.get("type"), "version": w.get("version"), "props": props, "actions": acts})
print(json.dumps({"root": root.tag + " " + (root.get("version") or ""), "widgets": ws}))
`;
  const p = Bun.spawn(["/usr/bin/python3", "-c", code], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  p.stdin.write(xml);
  await p.stdin.end();
  const [out, err, rc] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (rc !== 0) throw new Error(`not well-formed XML: ${err}`);
  return JSON.parse(out) as { root: string; widgets: ParsedWidget[] };
}

function checkNames(widgets: ParsedWidget[]): void {
  for (const w of widgets) {
    expect(WIDGET_TYPES.has(w.type)).toBe(true);
    expect(w.version).toBe(w.type === "action_button" ? "3.0.0" : "2.0.0");
    for (const k of Object.keys(w.props))
      expect([w.type, k, PROPERTIES.has(k)]).toEqual([w.type, k, true]);
    for (const a of w.actions) {
      expect(Object.keys(ACTION_TYPES)).toContain(a.type);
      for (const f of Object.keys(a.fields)) expect(ACTION_TYPES[a.type]).toContain(f);
    }
  }
}

const PLUGIN: ScreenPlugin = {
  name: "oven & <co>",
  kind: "task",
  mode: "continuous",
  prefix: "BL:OVEN",
  pvs: [
    {
      name: "STATUS",
      fullName: "BL:OVEN:STATUS",
      kind: "enum",
      count: 1,
      writable: false,
      meta: { states: ["INIT", "RUN", "PAUSED", "END", "ERROR"] },
    },
    {
      name: "MESSAGE",
      fullName: "BL:OVEN:MESSAGE",
      kind: "string",
      count: 1,
      writable: false,
      meta: {},
    },
    {
      name: "ENABLE",
      fullName: "BL:OVEN:ENABLE",
      kind: "enum",
      count: 1,
      writable: true,
      meta: { states: ["Disabled", "Enabled"] },
    },
    {
      name: "RUN",
      fullName: "BL:OVEN:RUN",
      kind: "enum",
      count: 1,
      writable: true,
      meta: { states: ["0", "1"] },
    },
    {
      name: "CYCLE_COUNT",
      fullName: "BL:OVEN:CYCLE_COUNT",
      kind: "long",
      count: 1,
      writable: false,
      meta: {},
    },
    {
      name: "SETPOINT",
      fullName: "BL:OVEN:SETPOINT",
      kind: "double",
      count: 1,
      writable: true,
      meta: { units: "degC", precision: 1, controlLow: 0, controlHigh: 250 },
    },
    { name: "GAIN", fullName: "BL:OVEN:GAIN", kind: "double", count: 1, writable: true, meta: {} },
    {
      name: "MODE",
      fullName: "BL:OVEN:MODE",
      kind: "enum",
      count: 1,
      writable: true,
      meta: { states: ["OFF", "HEAT", "COOL"] },
    },
    {
      name: "TEMP",
      fullName: "BL:OVEN:TEMP",
      kind: "double",
      count: 1,
      writable: false,
      meta: { units: "degC", description: "oven temperature" },
    },
    {
      name: "ALARM",
      fullName: "BL:OVEN:ALARM",
      kind: "enum",
      count: 1,
      writable: false,
      meta: { states: ["OK", "ALARM"] },
    },
    {
      name: "WAVE",
      fullName: "BL:OVEN:WAVE",
      kind: "double",
      count: 100,
      writable: false,
      meta: {},
    },
  ],
};

const byPv = (ws: ParsedWidget[], pv: string) =>
  ws
    .filter((w) => w.props.pv_name === pv)
    .map((w) => w.type)
    .sort();

test("a plugin's screen: the widget each PV needs, with Phoebus's names only", async () => {
  const { root, widgets } = await parseBob(pluginScreen(PLUGIN));
  expect(root).toBe("display 2.0.0");
  checkNames(widgets);
  expect(byPv(widgets, "BL:OVEN:STATUS")).toEqual(["textupdate"]);
  expect(byPv(widgets, "BL:OVEN:MESSAGE")).toEqual(["textupdate"]);
  expect(byPv(widgets, "BL:OVEN:ENABLE")).toEqual(["bool_button"]);
  expect(byPv(widgets, "BL:OVEN:SETPOINT")).toEqual(["scaledslider", "textentry"]);
  expect(byPv(widgets, "BL:OVEN:GAIN")).toEqual(["textentry"]); // no limits: no slider
  expect(byPv(widgets, "BL:OVEN:MODE")).toEqual(["combo"]);
  expect(byPv(widgets, "BL:OVEN:TEMP")).toEqual(["textupdate"]);
  expect(byPv(widgets, "BL:OVEN:ALARM")).toEqual(["led", "textupdate"]);
  const slider = widgets.find((w) => w.type === "scaledslider");
  expect([slider?.props.minimum, slider?.props.maximum, slider?.props.limits_from_pv]).toEqual([
    "0",
    "250",
    "false",
  ]);
  expect(widgets.find((w) => w.props.pv_name === "BL:OVEN:TEMP")?.props.show_units).toBe("true");
  expect(widgets.find((w) => w.type === "combo")?.props.items_from_pv).toBe("true");
  const run = widgets.find((w) => w.type === "action_button");
  expect(run?.actions).toEqual([
    { type: "write_pv", fields: { pv_name: "BL:OVEN:RUN", value: "1", description: "Run once" } },
  ]);
  expect(widgets.find((w) => w.props.name === "title")?.props.text).toBe(
    "oven & <co> (task, continuous)",
  );
});

test("the overview links every plugin's screen", async () => {
  const job: ScreenPlugin = { name: "diag", kind: "job", prefix: "BL:DIAG", pvs: [] };
  const { widgets } = await parseBob(overviewScreen([PLUGIN, job]));
  checkNames(widgets);
  const opens = widgets
    .filter((w) => w.type === "action_button")
    .map((w) => w.actions[0]?.fields.file);
  expect(opens).toEqual([
    `plugins/${encodeURIComponent(PLUGIN.name)}/display.bob`,
    "plugins/diag/display.bob",
  ]);
  expect(byPv(widgets, "BL:DIAG:STATUS")).toEqual(["textupdate"]);
  const empty = await parseBob(overviewScreen([]));
  expect(empty.widgets.some((w) => w.props.text === "No plugins loaded.")).toBe(true);
});

test("the routes serve screens from the registry's PV definitions", async () => {
  const registry = new PvRegistry();
  registry.add({
    name: "T:P:SP",
    kind: "double",
    writable: true,
    meta: { units: "mm", controlLow: -5, controlHigh: 5 },
  });
  const info = {
    name: "p",
    kind: "task" as const,
    mode: "continuous" as const,
    status: "RUN",
    message: "",
    prefix: "T:P",
    git_url: "file:///x",
    parameters: {},
    running: true,
    pvs: [
      {
        name: "SP",
        fullName: "T:P:SP",
        kind: "double",
        writable: true,
        value: 0,
        status: 0,
        severity: 0,
      },
    ],
  };
  const app = new Elysia().use(
    consoleRoutes({
      plugins: { list: (k) => (k === "task" ? [info] : []) },
      logs: new LogRings(),
      source: registry,
    }),
  );
  const res = await app.handle(new Request("http://localhost/plugins/p/display.bob"));
  expect(res.headers.get("content-type")).toContain("xml");
  const { widgets } = await parseBob(await res.text());
  const slider = widgets.find((w) => w.type === "scaledslider");
  expect([slider?.props.minimum, slider?.props.maximum]).toEqual(["-5", "5"]);
  expect((await app.handle(new Request("http://localhost/plugins/nope/display.bob"))).status).toBe(
    404,
  );
  const all = await parseBob(
    await (await app.handle(new Request("http://localhost/display.bob"))).text(),
  );
  expect(all.widgets.some((w) => w.actions[0]?.fields.file === "plugins/p/display.bob")).toBe(true);
});
