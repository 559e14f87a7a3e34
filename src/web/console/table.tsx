/**
 * The console's tables: scrollable on narrow screens (`table-wrap`), a caption for screen
 * readers, one header row of column scopes; the rows are the children.
 */
import type { ComponentChildren } from "preact";

export function DataTable(props: {
  class: string;
  caption: string;
  columns: readonly string[];
  children: ComponentChildren;
}) {
  return (
    <div class="table-wrap">
      <table class={props.class}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}
