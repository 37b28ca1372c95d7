/**
 * `pocketci run --timestamps`: every line of the text output starts with the UTC time it
 * was written (ISO 8601 with milliseconds, the form of the NDJSON events' `time`).
 *
 * @module
 */

import type { Output } from "./reporters.ts";

/** `out` with each line prefixed by `clock()`'s time as `2026-01-02T03:04:05.678Z `. */
export function timestamped(out: Output, clock: () => Date = () => new Date()): Output {
  // Per stream: whether the next character written starts a line.
  const atStart = { stdout: true, stderr: true };
  const prefix = (stream: "stdout" | "stderr", text: string): string => {
    if (text === "") return text;
    const stamp = `${clock().toISOString()} `;
    let result = atStart[stream] ? stamp : "";
    const body = text.endsWith("\n") ? text.slice(0, -1) : text;
    result += body.replaceAll("\n", `\n${stamp}`);
    if (body !== text) result += "\n";
    atStart[stream] = text.endsWith("\n");
    return result;
  };
  return {
    stdout: (text) => out.stdout(prefix("stdout", text)),
    stderr: (text) => out.stderr(prefix("stderr", text)),
  };
}
