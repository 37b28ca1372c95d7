import assert from "node:assert/strict";
import {
  errorSection,
  GROUPS,
  LAST_FILE,
  parseSummary,
  splitFiles,
  testFiles,
} from "./run_groups.ts";

Deno.test("run groups: VM, machine and cloud suites get their own groups, the leftovers check none", () => {
  const groups = splitFiles([
    "tests/conformance/qemu_test.ts",
    "drivers/qemu/qga_test.ts",
    "agent/protocol_test.ts",
    "tests/conformance/fly_pipeline_test.ts",
    "tests/k8s/kubectl_test.ts",
    "tests/machines/pool_test.ts",
    "tests/conformance/docker_test.ts",
    "runner/mask_test.ts",
    LAST_FILE,
  ]);
  assert.deepEqual(groups.get("vm"), [
    "tests/conformance/qemu_test.ts",
    "drivers/qemu/qga_test.ts",
    "agent/protocol_test.ts",
  ]);
  assert.deepEqual(groups.get("cloud"), [
    "tests/conformance/fly_pipeline_test.ts",
    "tests/k8s/kubectl_test.ts",
  ]);
  assert.deepEqual(groups.get("machines"), ["tests/machines/pool_test.ts"]);
  assert.deepEqual(groups.get("core"), ["tests/conformance/docker_test.ts", "runner/mask_test.ts"]);
  assert.deepEqual([...groups.keys()], ["core", ...GROUPS.map((g) => g.name)]);
});

Deno.test("run groups: every test file of the repository is in exactly one group or last", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const files = await testFiles(root);
  assert.ok(files.includes("tests/run_groups_test.ts"));
  assert.ok(files.includes(LAST_FILE));
  const grouped = [...splitFiles(files).values()].flat();
  assert.equal(grouped.length, files.length - 1);
  assert.equal(new Set(grouped).size, grouped.length);
});

Deno.test("run groups: the closing line of deno test is read, colours or not; none is undefined", () => {
  assert.deepEqual(
    parseSummary("x\n\x1b[0m\x1b[32mok\x1b[0m | 12 passed | 0 failed \x1b[38;5;245m(3s)\x1b[0m\n"),
    { passed: 12, failed: 0 },
  );
  assert.deepEqual(parseSummary("FAILED | 3 passed | 2 failed | 1 ignored (1s)\n"), {
    passed: 3,
    failed: 2,
  });
  assert.equal(parseSummary("error: Module not found\n"), undefined);
});

Deno.test("run_groups: a failed group's ERRORS section is cut out of its output for the closing restatement", () => {
  const output =
    "running 2 tests\nx ... ok\n\n\x1b[1m ERRORS \x1b[0m\n\nx => ./a_test.ts:1\nAssertionError: boom\n\n" +
    "\x1b[1m FAILURES \x1b[0m\n\nx => ./a_test.ts:1\n\nFAILED | 1 passed | 1 failed\n";
  const section = errorSection(output);
  assert.ok(section.startsWith(" ERRORS "), section);
  assert.ok(section.includes("AssertionError: boom"), section);
  assert.ok(!section.includes("FAILURES"), section);
  assert.ok(!section.includes("running 2 tests"), section);
  assert.equal(errorSection("a".repeat(9000)).length, 8001);
});
