import assert from "node:assert/strict";
import { escapingSymlinks } from "./symlink_escapes.ts";

async function tree(): Promise<{ base: string; dir: string; outside: string }> {
  const base = await Deno.realPath(await Deno.makeTempDir({ prefix: "pocketci-symlinks-" }));
  const dir = `${base}/pipeline`;
  const outside = `${base}/outside`;
  await Deno.mkdir(`${dir}/sub/deeper`, { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/secret.txt`, "secret");
  await Deno.writeTextFile(`${dir}/sub/file.txt`, "inside");
  return { base, dir, outside };
}

Deno.test("symlink escapes: nothing to deny when every link stays inside", async () => {
  const { base, dir } = await tree();
  await Deno.symlink(`${dir}/sub/file.txt`, `${dir}/file-link`);
  await Deno.symlink("sub", `${dir}/dir-link`);
  await Deno.symlink("..", `${dir}/sub/up`);
  const scan = await escapingSymlinks([dir]);
  assert.deepEqual(scan.deny, []);
  assert.ok(scan.entries >= 5);
  await Deno.remove(base, { recursive: true });
});

Deno.test("symlink escapes: file and directory links leaving the root, nested ones, dangling ones", async () => {
  const { base, dir, outside } = await tree();
  await Deno.symlink("/", `${dir}/root`);
  await Deno.symlink(`${outside}/secret.txt`, `${dir}/sub/secret-link`);
  await Deno.symlink("../../../outside", `${dir}/sub/deeper/out`);
  await Deno.symlink(`${dir}/missing`, `${dir}/dangling`);
  const scan = await escapingSymlinks([dir]);
  assert.deepEqual(scan.deny, [
    `${dir}/dangling`,
    `${dir}/root`,
    `${dir}/sub/deeper/out`,
    `${dir}/sub/secret-link`,
  ]);
  await Deno.remove(base, { recursive: true });
});

Deno.test("symlink escapes: an alias of a directory holding a denied link is denied too (b -> ., chains)", async () => {
  const { base, dir } = await tree();
  await Deno.symlink("/", `${dir}/sub/deeper/root`);
  await Deno.symlink(".", `${dir}/b`);
  await Deno.symlink("sub", `${dir}/s`);
  await Deno.symlink("s", `${dir}/s2`);
  await Deno.symlink("sub/file.txt", `${dir}/harmless`);
  const scan = await escapingSymlinks([dir]);
  // b/sub/deeper/root, s/deeper/root and s2/deeper/root all reach /.
  assert.deepEqual(scan.deny, [`${dir}/b`, `${dir}/s`, `${dir}/s2`, `${dir}/sub/deeper/root`]);
  await Deno.remove(base, { recursive: true });
});

Deno.test("symlink escapes: `..` after a symlink is lexical, so a link up into the root is allowed", async () => {
  const { base, dir } = await tree();
  // sub/deeper/up -> ../.. is the root itself: inside, and an alias of a tree with no escape.
  await Deno.symlink("../..", `${dir}/sub/deeper/up`);
  assert.deepEqual((await escapingSymlinks([dir])).deny, []);
  // Once the root holds an escape, the alias reaches it and is denied too.
  await Deno.symlink("/etc", `${dir}/etc`);
  assert.deepEqual((await escapingSymlinks([dir])).deny, [`${dir}/etc`, `${dir}/sub/deeper/up`]);
  await Deno.remove(base, { recursive: true });
});

Deno.test("symlink escapes: a link into another granted root is allowed; a granted root that is a symlink is walked under its own name", async () => {
  const { base, dir, outside } = await tree();
  await Deno.symlink(outside, `${dir}/shared`);
  await Deno.symlink(dir, `${base}/alias`);
  await Deno.symlink("/", `${dir}/root`);
  const scan = await escapingSymlinks([`${base}/alias`, outside]);
  assert.deepEqual(scan.deny, [`${base}/alias/root`]);
  assert.deepEqual((await escapingSymlinks(["/", dir])).deny, []);
  await Deno.remove(base, { recursive: true });
});

Deno.test("symlink escapes: Deno refuses a read through a denied link and allows it without the walk", async () => {
  const { base, dir } = await tree();
  await Deno.symlink("/", `${dir}/root`);
  await Deno.symlink(".", `${dir}/b`);
  const code = `for (const p of Deno.args) {
    try { Deno.readTextFileSync(p); console.log("read"); } catch (e) { console.log(e.name); }
  }`;
  await Deno.writeTextFile(`${base}/read.ts`, code);
  const read = async (deny: readonly string[]) => {
    // `deno eval` ignores permission flags: a script file it is.
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--allow-read=${dir}`,
        ...(deny.length > 0 ? [`--deny-read=${deny.join(",")}`] : []),
        `${base}/read.ts`,
        `${dir}/root/etc/hostname`,
        `${dir}/b/root/etc/hostname`,
        `${dir}/sub/file.txt`,
      ],
      stdout: "piped",
    }).output();
    return new TextDecoder().decode(output.stdout).trim().split("\n");
  };
  assert.deepEqual(await read([]), ["read", "read", "read"]);
  const scan = await escapingSymlinks([dir]);
  assert.deepEqual(await read(scan.deny), ["NotCapable", "NotCapable", "read"]);
  await Deno.remove(base, { recursive: true });
});
