/**
 * Phoebus Display Builder screens (`.bob`, display format 2.0.0) generated from a plugin's PV
 * definitions, so a screen never drifts from the PVs it shows.
 *
 * Widget types and property names are those Phoebus's display model defines
 * (app/display/model, `WidgetDescriptor` types and `CommonWidgetProperties` names):
 * `label`, `textupdate`, `textentry`, `scaledslider`, `led`, `combo`, `bool_button`,
 * `action_button` (actions `write_pv`, `open_display`), `group`; properties `name`, `x`, `y`,
 * `width`, `height`, `text`, `pv_name`, `show_units`, `precision`, `format`, `minimum`,
 * `maximum`, `limits_from_pv`, `off_label`, `on_label`, `labels_from_pv`, `items_from_pv`,
 * `actions`, `horizontal_alignment`. test/display checks the files against that list.
 */
import type { TaskMode } from "../common/names.ts";
import type { PvKind, PvMeta } from "../pv/types.ts";

/** A PV as the generator needs it. */
export interface ScreenPv {
  /** Short name (SETPOINT). */
  name: string;
  /** Full name served on CA/PVA (BL:PLUGIN:SETPOINT). */
  fullName: string;
  kind: PvKind | string;
  count: number;
  writable: boolean;
  meta: Readonly<PvMeta>;
}

export interface ScreenPlugin {
  name: string;
  kind: "task" | "job";
  mode?: TaskMode;
  prefix: string;
  pvs: ScreenPv[];
}

/** Default PVs placed in the header rather than the list. */
const HEADER_PVS = new Set(["STATUS", "MESSAGE", "ENABLE", "RUN", "CYCLE_COUNT"]);
const ROW = 30;
const LABEL_W = 170;
const VALUE_W = 220;
const MARGIN = 10;

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) =>
    c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "&" ? "&amp;" : c === '"' ? "&quot;" : "&apos;",
  );
}

type Props = Array<[string, string | number | boolean | undefined]>;

/** One `<widget>`; `inner` is raw XML already escaped (actions). */
function widget(type: string, props: Props, inner = "", version = "2.0.0"): string {
  const lines = [`  <widget type="${type}" version="${version}">`];
  for (const [k, v] of props) {
    if (v === undefined) continue;
    lines.push(`    <${k}>${escapeXml(String(v))}</${k}>`);
  }
  if (inner !== "") lines.push(inner);
  lines.push("  </widget>");
  return lines.join("\n");
}

function box(name: string, x: number, y: number, w: number, h = ROW - 6): Props {
  return [
    ["name", name],
    ["x", x],
    ["y", y],
    ["width", w],
    ["height", h],
  ];
}

function writeAction(pv: string, value: string, description: string): string {
  return [
    "    <actions>",
    '      <action type="write_pv">',
    `        <pv_name>${escapeXml(pv)}</pv_name>`,
    `        <value>${escapeXml(value)}</value>`,
    `        <description>${escapeXml(description)}</description>`,
    "      </action>",
    "    </actions>",
  ].join("\n");
}

function isBool(pv: ScreenPv): boolean {
  return pv.kind === "enum" && (pv.meta.states?.length ?? 0) === 2;
}

/** The value widget(s) of one PV row, at (x, y). */
function valueWidgets(pv: ScreenPv, x: number, y: number): string[] {
  const id = pv.name;
  const m = pv.meta;
  if (isBool(pv)) {
    const [off, on] = m.states ?? ["0", "1"];
    if (pv.writable) {
      return [
        widget("bool_button", [
          ...box(`${id}_toggle`, x, y, 120),
          ["pv_name", pv.fullName],
          ["off_label", off],
          ["on_label", on],
          ["labels_from_pv", false],
        ]),
      ];
    }
    return [
      widget("led", [
        ...box(`${id}_led`, x, y, 20, 20),
        ["pv_name", pv.fullName],
        ["off_label", ""],
        ["on_label", ""],
      ]),
      widget("textupdate", [
        ...box(`${id}_text`, x + 30, y, VALUE_W - 30),
        ["pv_name", pv.fullName],
      ]),
    ];
  }
  if (pv.kind === "enum") {
    if (pv.writable) {
      return [
        widget("combo", [
          ...box(`${id}_combo`, x, y, VALUE_W),
          ["pv_name", pv.fullName],
          ["items_from_pv", true],
        ]),
      ];
    }
    return [widget("textupdate", [...box(`${id}_text`, x, y, VALUE_W), ["pv_name", pv.fullName]])];
  }
  const numeric = pv.kind !== "string" && !(pv.kind === "char" && pv.count > 1);
  const shown: Props = [
    ["pv_name", pv.fullName],
    ["show_units", numeric && m.units !== undefined],
  ];
  if (!pv.writable || pv.count > 1) {
    return [
      widget("textupdate", [
        ...box(`${id}_value`, x, y, VALUE_W),
        ...shown,
        ["horizontal_alignment", 2],
      ]),
    ];
  }
  const out = [widget("textentry", [...box(`${id}_entry`, x, y, VALUE_W), ...shown])];
  const lo = m.controlLow ?? m.displayLow;
  const hi = m.controlHigh ?? m.displayHigh;
  if (numeric && lo !== undefined && hi !== undefined && hi > lo) {
    // Within the drive limits: the slider cannot ask for a value the PV would refuse.
    out.push(
      widget("scaledslider", [
        ...box(`${id}_slider`, x + VALUE_W + MARGIN, y - 4, 260, ROW + 8),
        ["pv_name", pv.fullName],
        ["minimum", lo],
        ["maximum", hi],
        ["limits_from_pv", false],
      ]),
    );
  }
  return out;
}

function header(p: ScreenPlugin, title: string): { xml: string[]; y: number } {
  const xml = [
    widget("label", [...box("title", MARGIN, MARGIN, 600, 30), ["text", title]]),
    widget("label", [...box("status_label", MARGIN, 50, 80), ["text", "STATUS"]]),
    widget("textupdate", [...box("status", 90, 50, 140), ["pv_name", `${p.prefix}:STATUS`]]),
    widget("label", [...box("message_label", 250, 50, 80), ["text", "MESSAGE"]]),
    widget("textupdate", [...box("message", 330, 50, 420), ["pv_name", `${p.prefix}:MESSAGE`]]),
  ];
  let x = MARGIN;
  const y = 84;
  const has = (n: string) => p.pvs.some((pv) => pv.name === n);
  if (has("ENABLE")) {
    const en = p.pvs.find((pv) => pv.name === "ENABLE");
    const [off, on] = en?.meta.states ?? ["Disabled", "Enabled"];
    xml.push(
      widget("bool_button", [
        ...box("enable", x, y, 140),
        ["pv_name", `${p.prefix}:ENABLE`],
        ["off_label", off],
        ["on_label", on],
        ["labels_from_pv", false],
      ]),
    );
    x += 150;
  }
  if (has("RUN")) {
    xml.push(
      widget(
        "action_button",
        [...box("run", x, y, 100), ["pv_name", `${p.prefix}:RUN`], ["text", "RUN"]],
        writeAction(`${p.prefix}:RUN`, "1", "Run once"),
        "3.0.0",
      ),
    );
    x += 110;
  }
  if (has("CYCLE_COUNT")) {
    xml.push(widget("label", [...box("cycles_label", x, y, 110), ["text", "CYCLE_COUNT"]]));
    xml.push(
      widget("textupdate", [
        ...box("cycles", x + 110, y, 100),
        ["pv_name", `${p.prefix}:CYCLE_COUNT`],
      ]),
    );
  }
  return { xml, y: y + ROW + MARGIN };
}

function document(name: string, width: number, height: number, widgets: string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    "<!-- Generated by iocmng from the plugin's PV definitions; regenerate rather than edit. -->",
    '<display version="2.0.0">',
    `  <name>${escapeXml(name)}</name>`,
    `  <width>${width}</width>`,
    `  <height>${height}</height>`,
    ...widgets,
    "</display>",
    "",
  ].join("\n");
}

/** The screen of one plugin: header (STATUS, MESSAGE, ENABLE, RUN), then a row per PV. */
export function pluginScreen(p: ScreenPlugin): string {
  const { xml, y: top } = header(p, `${p.name} (${p.kind}${p.mode ? `, ${p.mode}` : ""})`);
  let y = top;
  const rows = p.pvs.filter((pv) => !HEADER_PVS.has(pv.name));
  for (const section of [
    { title: "Inputs", pvs: rows.filter((pv) => pv.writable) },
    { title: "Outputs", pvs: rows.filter((pv) => !pv.writable) },
  ]) {
    if (section.pvs.length === 0) continue;
    xml.push(
      widget("label", [
        ...box(`${section.title.toLowerCase()}_title`, MARGIN, y, 200),
        ["text", section.title],
      ]),
    );
    y += ROW;
    for (const pv of section.pvs) {
      xml.push(
        widget("label", [
          ...box(`${pv.name}_label`, MARGIN, y, LABEL_W),
          ["text", pv.meta.description ? `${pv.name} — ${pv.meta.description}` : pv.name],
        ]),
      );
      xml.push(...valueWidgets(pv, MARGIN + LABEL_W + MARGIN, y));
      y += ROW + (pv.writable ? 6 : 0);
    }
    y += MARGIN;
  }
  return document(p.name, 760, y + MARGIN, xml);
}

/**
 * The overview: one row per plugin with STATUS and MESSAGE and a button opening its screen.
 * The link is relative (`plugins/NAME/display.bob`): opened from this server's URL, Phoebus
 * resolves it against `/api/v1/display.bob` to the plugin's screen on the same server.
 */
export function overviewScreen(plugins: ScreenPlugin[], title = "iocmng plugins"): string {
  const xml = [widget("label", [...box("title", MARGIN, MARGIN, 600, 30), ["text", title]])];
  let y = 50;
  for (const p of plugins) {
    const id = p.name;
    xml.push(
      widget("label", [...box(`${id}_name`, MARGIN, y, 180), ["text", `${p.name} (${p.kind})`]]),
    );
    xml.push(
      widget("textupdate", [
        ...box(`${id}_status`, 200, y, 110),
        ["pv_name", `${p.prefix}:STATUS`],
      ]),
    );
    xml.push(
      widget("textupdate", [
        ...box(`${id}_message`, 320, y, 330),
        ["pv_name", `${p.prefix}:MESSAGE`],
      ]),
    );
    const open = [
      "    <actions>",
      '      <action type="open_display">',
      `        <file>plugins/${escapeXml(encodeURIComponent(p.name))}/display.bob</file>`,
      "        <target>tab</target>",
      `        <description>${escapeXml(`Open ${p.name}`)}</description>`,
      "      </action>",
      "    </actions>",
    ].join("\n");
    xml.push(
      widget("action_button", [...box(`${id}_open`, 660, y, 90), ["text", "Open"]], open, "3.0.0"),
    );
    y += ROW;
  }
  if (plugins.length === 0) {
    xml.push(widget("label", [...box("empty", MARGIN, y, 400), ["text", "No plugins loaded."]]));
    y += ROW;
  }
  return document("iocmng", 760, y + MARGIN, xml);
}
