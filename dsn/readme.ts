/**
 * The README's driver table, generated from the schemas. `deno run -A dsn/readme.ts`
 * rewrites it in README.md; a test fails when the README and the schemas disagree.
 *
 * @module
 */

import { describeDrivers } from "./describe.ts";
import type { ParameterDescription } from "./types.ts";

/** The line before the generated table in README.md. */
export const TABLE_BEGIN = "<!-- driver-table: generated from dsn/schemas.ts by dsn/readme.ts -->";
/** The line after the generated table in README.md. */
export const TABLE_END = "<!-- /driver-table -->";

/** The Markdown driver table: one subsection per driver with every parameter. */
export function driverTableMarkdown(): string {
  const sections = describeDrivers().map((driver) => {
    const lines = [`#### \`${driver.name}\``, "", driver.summary, ""];
    if (driver.parameters.length === 0) {
      lines.push("No parameters.");
    } else {
      lines.push(
        "| Parameter | Type | Default | Environment variable | Description |",
        "| --- | --- | --- | --- | --- |",
        ...driver.parameters.map(row),
      );
    }
    return lines.join("\n");
  });
  return sections.join("\n\n");
}

function row(parameter: ParameterDescription): string {
  const cells = [
    `\`${parameter.name}\``,
    parameter.typeText,
    parameter.required ? "required" : defaultCell(parameter.default),
    parameter.env === null ? "" : `\`${parameter.env}\``,
    parameter.description,
  ];
  return `| ${cells.map((cell) => cell.replaceAll("|", "\\|")).join(" | ")} |`;
}

function defaultCell(value: string | null): string {
  if (value === null || value.startsWith("(") || value.includes(" ")) return value ?? "";
  return `\`${value}\``;
}

/**
 * `text` with Markdown table rows reduced to their trimmed cells, so a table compares equal
 * before and after `deno fmt` pads its columns.
 */
export function normalizeTables(text: string): string {
  return text.split("\n").map((line) => {
    const trimmed = line.trim();
    if (!trimmed.startsWith("|")) return trimmed;
    const cells = trimmed.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim());
    return "| " + cells.map((cell) => /^:?-+:?$/.test(cell) ? "---" : cell).join(" | ") + " |";
  }).join("\n").replace(/\n{3,}/g, "\n\n").trim();
}

/** The generated table as it stands in `readme`, between the markers. */
export function tableInReadme(readme: string): string {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  if (begin < 0 || end < begin) {
    throw new Error(`README.md has no "${TABLE_BEGIN}" ... "${TABLE_END}" markers`);
  }
  return readme.slice(begin + TABLE_BEGIN.length, end);
}

/** `readme` with the text between the table markers replaced by `table`. */
export function withDriverTable(readme: string, table: string = driverTableMarkdown()): string {
  const begin = readme.indexOf(TABLE_BEGIN);
  const end = readme.indexOf(TABLE_END);
  if (begin < 0 || end < begin) {
    throw new Error(`README.md has no "${TABLE_BEGIN}" ... "${TABLE_END}" markers`);
  }
  return readme.slice(0, begin + TABLE_BEGIN.length) + "\n\n" + table.trim() + "\n\n" +
    readme.slice(end);
}

async function formatted(markdown: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(markdown));
  await writer.close();
  const output = await child.output();
  if (!output.success) throw new Error("deno fmt failed on the generated driver table");
  return new TextDecoder().decode(output.stdout);
}

if (import.meta.main) {
  const path = new URL("../README.md", import.meta.url);
  const table = await formatted(driverTableMarkdown());
  await Deno.writeTextFile(path, withDriverTable(await Deno.readTextFile(path), table));
}
