/**
 * `deno task test`: runs every `_test.ts` file of the repository in four groups at once (the
 * VM suites, which mostly burn CPU under TCG; the fake DigitalOcean and Hetzner suites and the
 * fake Fly and Kubernetes suites, which mostly wait on polling and SSH; everything else), each
 * group's files one after another as before, then the docker
 * leftovers check alone once all groups are done. Prints each group's output as it ends and one
 * combined `ok | N passed | M failed` line. Extra arguments go to every `deno test`.
 *
 * @module
 */

import { stripAnsi } from "../runner/rpc.ts";

/** A group of test files run one after another in its own `deno test`. */
export interface TestGroup {
  /** Shown in headers and the summary. */
  readonly name: string;
  /** Repository-relative paths (with `/`) of the group's files. */
  readonly pattern: RegExp;
}

/** The groups besides "core" (everything else). A file goes to the first group that matches. */
export const GROUPS: readonly TestGroup[] = [
  {
    name: "vm",
    pattern:
      /^(tests\/(conformance\/(qemu|vz_qemu|agent)_|qemu\/)|drivers\/(qemu|vz|agent_client)\/|agent\/)/,
  },
  {
    name: "machines",
    pattern:
      /^(tests\/(conformance\/(digitalocean|hetzner)_|machines\/)|drivers\/(machines|digitalocean|hetzner)\/)/,
  },
  {
    name: "cloud",
    pattern: /^(tests\/(conformance\/(fly|k8s)_|fly\/|k8s\/)|drivers\/(fly|k8s)\/)/,
  },
];

/** Runs after every group: it checks that no test left a labelled docker resource behind. */
export const LAST_FILE = "tests/zz_docker_leftovers_test.ts";

const SKIPPED_DIRS = new Set([".git", "node_modules", ".pocketci"]);

/** Every `_test.ts` file under `root`, repository-relative, sorted. */
export async function testFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(dir: string, prefix: string): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory && !SKIPPED_DIRS.has(entry.name)) {
        await walk(`${dir}/${entry.name}`, `${prefix}${entry.name}/`);
      } else if (entry.isFile && entry.name.endsWith("_test.ts")) {
        found.push(prefix + entry.name);
      }
    }
  }
  await walk(root, "");
  return found.sort();
}

/** Splits files into the named groups and "core", leaving out {@link LAST_FILE}. */
export function splitFiles(files: readonly string[]): Map<string, string[]> {
  const groups = new Map<string, string[]>([
    ["core", []],
    ...GROUPS.map((g) =>
      [g.name, []] as [
        string,
        string[],
      ]
    ),
  ]);
  for (const file of files) {
    if (file === LAST_FILE) continue;
    const group = GROUPS.find((g) => g.pattern.test(file))?.name ?? "core";
    groups.get(group)!.push(file);
  }
  return groups;
}

/** Passed and failed counts from `deno test`'s closing line, or undefined when it has none. */
export function parseSummary(output: string): { passed: number; failed: number } | undefined {
  const plain = stripAnsi(output);
  const match = [...plain.matchAll(/^(?:ok|FAILED) \| (\d+) passed[^|]*\| (\d+) failed/gm)].at(-1);
  return match ? { passed: Number(match[1]), failed: Number(match[2]) } : undefined;
}

interface GroupResult {
  readonly name: string;
  readonly output: string;
  readonly success: boolean;
  readonly seconds: number;
}

async function runGroup(name: string, files: string[], extra: string[]): Promise<GroupResult> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--unstable-worker-options", ...extra, ...files],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const decoder = new TextDecoder();
  let output = "";
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
  };
  const [status] = await Promise.all([child.status, collect(child.stdout), collect(child.stderr)]);
  return {
    name,
    output,
    success: status.success,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The `ERRORS` part of a failed `deno test` output (its first 8000 characters at most). */
export function errorSection(output: string): string {
  const plain = stripAnsi(output);
  const start = plain.lastIndexOf(" ERRORS ");
  const end = plain.lastIndexOf(" FAILURES ");
  const section = start >= 0 && end > start ? plain.slice(start, end) : plain;
  return section.length > 8000 ? `${section.slice(0, 8000)}…` : section;
}

function print(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

async function main(args: string[]): Promise<number> {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  Deno.chdir(root);
  const groups = splitFiles(await testFiles(root));
  let passed = 0;
  let failed = 0;
  let allOk = true;
  const results: GroupResult[] = [];
  const report = (result: GroupResult) => {
    results.push(result);
    const summary = parseSummary(result.output);
    print(`\n===== test group ${result.name} (${result.seconds.toFixed(0)} s) =====\n`);
    print(result.output);
    if (!summary) {
      print(`test group ${result.name}: no closing line from deno test\n`);
      allOk = false;
      return;
    }
    passed += summary.passed;
    failed += summary.failed;
    if (!result.success) allOk = false;
  };
  // The machine suites run after the VM suites rather than beside them: both are the heaviest,
  // and three groups at once is what two cores carry without timing out SSH set-ups.
  const run = (name: string) => {
    const files = groups.get(name) ?? [];
    return files.length > 0 ? runGroup(name, files, args).then(report) : Promise.resolve();
  };
  const later = new Set(["machines"]);
  await Promise.all([
    ...[...groups.keys()].filter((name) => !later.has(name) && name !== "vm").map(run),
    run("vm").then(() => run("machines")),
  ]);
  report(await runGroup("last", [LAST_FILE], args));
  // CI keeps only the end of the output: restate every failing group's errors last.
  for (const result of results) {
    if (result.success) continue;
    print(`\n===== errors of test group ${result.name} =====\n${errorSection(result.output)}\n`);
  }
  const ok = allOk && failed === 0;
  print(`\n${ok ? "ok" : "FAILED"} | ${passed} passed | ${failed} failed\n`);
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
