import assert from "node:assert/strict";
import {
  ArchivePathError,
  compileExcludes,
  createTarStream,
  extractTar,
  listTar,
  packDirectory,
  TarError,
  tarFromFiles,
  type TarWriteEntry,
} from "./mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "pocketci-archive-test-" });
}

function streamOf(entries: TarWriteEntry[]): ReadableStream<Uint8Array> {
  return createTarStream(entries);
}

function file(path: string, content: string, mode = 0o644): TarWriteEntry {
  const body = encoder.encode(content);
  return { path, type: "file", mode, size: body.length, mtime: 1_700_000_000, body };
}

function symlink(path: string, target: string): TarWriteEntry {
  return { path, type: "symlink", mode: 0o777, size: 0, mtime: 1_700_000_000, linkTarget: target };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const LONG_DIR = "d".repeat(60) + "/" + "e".repeat(60) + "/" + "f".repeat(60);
const VERY_LONG = "x".repeat(150) + "/" + "y".repeat(150) + "/long-name.txt";

async function buildTree(root: string): Promise<Uint8Array> {
  const binary = new Uint8Array(256 * 1024 + 17);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 31 + (i >> 8)) & 0xff;
  await Deno.mkdir(`${root}/src/nested`, { recursive: true });
  await Deno.writeFile(`${root}/src/bin.dat`, binary);
  await Deno.writeTextFile(`${root}/src/nested/hello.txt`, "hello\n");
  await Deno.writeTextFile(`${root}/empty.txt`, "");
  await Deno.writeTextFile(`${root}/run.sh`, "#!/bin/sh\necho run\n");
  await Deno.chmod(`${root}/run.sh`, 0o755);
  await Deno.writeTextFile(`${root}/secret.txt`, "s");
  await Deno.chmod(`${root}/secret.txt`, 0o600);
  await Deno.symlink("src/nested/hello.txt", `${root}/link.txt`);
  await Deno.mkdir(`${root}/${LONG_DIR}`, { recursive: true });
  await Deno.writeTextFile(`${root}/${LONG_DIR}/deep.txt`, "deep");
  await Deno.mkdir(`${root}/${VERY_LONG.slice(0, VERY_LONG.lastIndexOf("/"))}`, {
    recursive: true,
  });
  await Deno.writeTextFile(`${root}/${VERY_LONG}`, "very long");
  await Deno.writeTextFile(`${root}/ünïcödé.txt`, "utf8");
  await Deno.mkdir(`${root}/node_modules/pkg`, { recursive: true });
  await Deno.writeTextFile(`${root}/node_modules/pkg/index.js`, "x");
  await Deno.mkdir(`${root}/src/node_modules`, { recursive: true });
  await Deno.writeTextFile(`${root}/src/node_modules/y.js`, "y");
  await Deno.writeTextFile(`${root}/debug.log`, "log");
  await Deno.mkdir(`${root}/build`, { recursive: true });
  await Deno.writeTextFile(`${root}/build/out.txt`, "out");
  await Deno.mkdir(`${root}/src/build`, { recursive: true });
  await Deno.writeTextFile(`${root}/src/build/kept.txt`, "kept");
  return binary;
}

Deno.test("pack then extract round-trips contents, modes, symlinks and long names", async () => {
  const source = await tempDir();
  const target = await tempDir();
  try {
    const binary = await buildTree(source);
    await extractTar(await packDirectory(source), target);
    assert.deepEqual(await Deno.readFile(`${target}/src/bin.dat`), binary);
    assert.equal(await Deno.readTextFile(`${target}/src/nested/hello.txt`), "hello\n");
    assert.equal(await Deno.readTextFile(`${target}/empty.txt`), "");
    assert.equal((await Deno.stat(`${target}/run.sh`)).mode! & 0o777, 0o755);
    assert.equal((await Deno.stat(`${target}/secret.txt`)).mode! & 0o777, 0o600);
    assert.equal((await Deno.lstat(`${target}/link.txt`)).isSymlink, true);
    assert.equal(await Deno.readLink(`${target}/link.txt`), "src/nested/hello.txt");
    assert.equal(await Deno.readTextFile(`${target}/${LONG_DIR}/deep.txt`), "deep");
    assert.equal(await Deno.readTextFile(`${target}/${VERY_LONG}`), "very long");
    assert.equal(await Deno.readTextFile(`${target}/ünïcödé.txt`), "utf8");
    const sourceTime = (await Deno.stat(`${source}/src/nested/hello.txt`)).mtime!.getTime();
    const targetTime = (await Deno.stat(`${target}/src/nested/hello.txt`)).mtime!.getTime();
    assert.equal(Math.floor(targetTime / 1000), Math.floor(sourceTime / 1000));
  } finally {
    await Deno.remove(source, { recursive: true });
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("pack applies exclude patterns by name, anchored path, glob and directory-only", async () => {
  const source = await tempDir();
  try {
    await buildTree(source);
    await Deno.writeTextFile(`${source}/out`, "a file named out");
    await Deno.mkdir(`${source}/src/out`);
    await Deno.writeTextFile(`${source}/src/out/x`, "x");
    const stream = await packDirectory(source, {
      exclude: ["node_modules", "*.log", "/build", "out/"],
    });
    const names = (await listTar(stream)).map((entry) => entry.path);
    assert.ok(!names.some((name) => name.includes("node_modules")), names.join(","));
    assert.ok(!names.includes("debug.log"));
    assert.ok(!names.includes("build") && !names.includes("build/out.txt"));
    assert.ok(names.includes("src/build/kept.txt"), "anchored /build must not exclude src/build");
    assert.ok(names.includes("out"), "out/ matches directories only");
    assert.ok(!names.includes("src/out") && !names.includes("src/out/x"));
    assert.ok(names.includes("src/bin.dat"));
  } finally {
    await Deno.remove(source, { recursive: true });
  }
});

Deno.test("exclude matcher handles ** and ?", () => {
  const matcher = compileExcludes(["src/**/*.tmp", "a?c"]);
  assert.equal(matcher.excludes("src/x.tmp", false), true);
  assert.equal(matcher.excludes("src/a/b/x.tmp", false), true);
  assert.equal(matcher.excludes("lib/x.tmp", false), false);
  assert.equal(matcher.excludes("deep/abc", true), true);
  assert.equal(matcher.excludes("deep/abbc", true), false);
  assert.throws(() => compileExcludes([" "]), /must not be empty/);
});

Deno.test("pack of selected paths names entries relative to the root", async () => {
  const source = await tempDir();
  try {
    await buildTree(source);
    const entries = await listTar(
      await packDirectory(source, { paths: ["empty.txt", "src/nested"] }),
    );
    assert.deepEqual(entries.map((entry) => entry.path), [
      "empty.txt",
      "src/nested",
      "src/nested/hello.txt",
    ]);
    assert.equal(decoder.decode(entries[2].content), "hello\n");
    assert.equal(entries[1].type, "directory");
  } finally {
    await Deno.remove(source, { recursive: true });
  }
});

Deno.test("pack refuses missing paths, .. and paths through an escaping symlink", async () => {
  const source = await tempDir();
  const outside = await tempDir();
  try {
    await Deno.writeTextFile(`${outside}/private.txt`, "private");
    await Deno.symlink(outside, `${source}/escape`);
    await assert.rejects(
      () => packDirectory(source, { paths: ["nope.txt"] }),
      (error: unknown) => error instanceof ArchivePathError && error.reason === "not_found",
    );
    await assert.rejects(
      () => packDirectory(source, { paths: ["../x"] }),
      (error: unknown) => error instanceof ArchivePathError && error.reason === "escape",
    );
    await assert.rejects(
      () => packDirectory(source, { paths: ["escape/private.txt"] }),
      (error: unknown) => error instanceof ArchivePathError && error.reason === "escape",
    );
    const entries = await listTar(await packDirectory(source, { paths: ["escape"] }));
    assert.deepEqual(entries.map((entry) => [entry.path, entry.type, entry.linkTarget]), [
      ["escape", "symlink", outside],
    ]);
    await assert.rejects(() => packDirectory(`${source}/missing`), ArchivePathError);
  } finally {
    await Deno.remove(source, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

for (
  const [label, entries] of [
    ["a .. path", [file("../evil.txt", "x")]],
    ["an absolute path", [file("/tmp/evil.txt", "x")]],
    ["a symlink escaping with ..", [symlink("up", "../../etc")]],
    ["a symlink to an absolute path", [symlink("abs", "/etc")]],
    ["a nested .. path", [file("a/../../evil.txt", "x")]],
  ] as const
) {
  Deno.test(`extract refuses ${label}`, async () => {
    const target = await tempDir();
    try {
      await assert.rejects(
        () => extractTar(streamOf([...entries]), target),
        (error: unknown) => error instanceof ArchivePathError && error.reason === "escape",
      );
      assert.deepEqual(await Array.fromAsync(Deno.readDir(target)), []);
    } finally {
      await Deno.remove(target, { recursive: true });
    }
  });
}

Deno.test("extract never writes through a symlink leading outside", async () => {
  const target = await tempDir();
  const outside = await tempDir();
  try {
    const entries = [symlink("link", outside), file("link/pwned.txt", "x")];
    await assert.rejects(
      () => extractTar(streamOf(entries), target, { allowEscapingSymlinks: true }),
      (error: unknown) => error instanceof ArchivePathError && error.reason === "escape",
    );
    assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);
    // A symlink already in the destination is not followed either.
    await Deno.remove(`${target}/link`);
    await Deno.symlink(outside, `${target}/pre`);
    await assert.rejects(
      () => extractTar(streamOf([file("pre/x.txt", "x")]), target),
      ArchivePathError,
    );
    // Replacing a symlink by a file replaces the link, not its target.
    await Deno.writeTextFile(`${outside}/victim.txt`, "safe");
    await Deno.symlink(`${outside}/victim.txt`, `${target}/victim.txt`);
    await extractTar(streamOf([file("victim.txt", "new")]), target);
    assert.equal(await Deno.readTextFile(`${outside}/victim.txt`), "safe");
    assert.equal(await Deno.readTextFile(`${target}/victim.txt`), "new");
  } finally {
    await Deno.remove(target, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("extract allows symlinks inside the destination and follows them for writes", async () => {
  const target = await tempDir();
  try {
    const entries: TarWriteEntry[] = [
      { path: "real", type: "directory", mode: 0o755, size: 0, mtime: 0 },
      symlink("alias", "real"),
      symlink("real/up", "../real"),
      file("alias/f.txt", "via alias"),
      {
        path: "hard.txt",
        type: "hardlink",
        mode: 0o644,
        size: 0,
        mtime: 0,
        linkTarget: "real/f.txt",
      },
    ];
    const summary = await extractTar(streamOf(entries), target);
    assert.deepEqual(summary, { files: 2, directories: 1, symlinks: 2 });
    assert.equal(await Deno.readTextFile(`${target}/real/f.txt`), "via alias");
    assert.equal(await Deno.readTextFile(`${target}/hard.txt`), "via alias");
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("a corrupt or truncated stream is a TarError", async () => {
  const bytes = await collect(tarFromFiles({ "a.txt": "hello" }));
  const corrupt = bytes.slice();
  corrupt[10] ^= 0xff;
  await assert.rejects(() => listTar(new Blob([corrupt]).stream()), TarError);
  await assert.rejects(() => listTar(new Blob([bytes.slice(0, 600)]).stream()), TarError);
});

Deno.test("tarFromFiles builds parent directories and listTar enforces its byte limit", async () => {
  const entries = await listTar(
    tarFromFiles({
      "a/b/c.txt": "abc",
      "top.bin": { content: new Uint8Array([0, 255]), mode: 0o700 },
    }),
  );
  assert.deepEqual(entries.map((entry) => [entry.path, entry.type]), [
    ["a", "directory"],
    ["a/b", "directory"],
    ["a/b/c.txt", "file"],
    ["top.bin", "file"],
  ]);
  assert.deepEqual(entries[3].content, new Uint8Array([0, 255]));
  assert.equal(entries[3].mode, 0o700);
  await assert.rejects(() => listTar(tarFromFiles({ "x": "12345" }), { maxBytes: 4 }), TarError);
});

Deno.test("archives interoperate with GNU tar in both directions", async () => {
  const source = await tempDir();
  const viaGnu = await tempDir();
  try {
    const binary = await buildTree(source);
    const packed = await collect(await packDirectory(source));
    const extract = new Deno.Command("tar", { args: ["-x", "-C", viaGnu], stdin: "piped" }).spawn();
    const writer = extract.stdin.getWriter();
    await writer.write(packed);
    await writer.close();
    assert.equal((await extract.status).code, 0);
    assert.deepEqual(await Deno.readFile(`${viaGnu}/src/bin.dat`), binary);
    assert.equal(await Deno.readTextFile(`${viaGnu}/${VERY_LONG}`), "very long");
    assert.equal(await Deno.readLink(`${viaGnu}/link.txt`), "src/nested/hello.txt");

    for (const format of ["gnu", "pax"]) {
      const create = await new Deno.Command("tar", {
        args: ["-c", `--format=${format}`, "-C", source, "."],
        stdout: "piped",
      }).output();
      assert.equal(create.code, 0);
      const entries = await listTar(new Blob([create.stdout]).stream(), { maxBytes: 1 << 24 });
      const byPath = new Map(entries.map((entry) => [entry.path.replace(/^\.\//, ""), entry]));
      assert.deepEqual(byPath.get("src/bin.dat")?.content, binary, format);
      assert.equal(decoder.decode(byPath.get(VERY_LONG)?.content), "very long", format);
      assert.equal(byPath.get("link.txt")?.linkTarget, "src/nested/hello.txt", format);
    }
  } finally {
    await Deno.remove(source, { recursive: true });
    await Deno.remove(viaGnu, { recursive: true });
  }
});

Deno.test("extract judges a symlink's target from the link's real directory, not lexically", async () => {
  const target = await tempDir();
  try {
    // d -> . makes d/d/d the root itself, so "../x" from there leaves it.
    const entries = [symlink("d", "."), symlink("d/d/d/l", "../x")];
    await assert.rejects(
      () => extractTar(streamOf(entries), target),
      (error: unknown) => error instanceof ArchivePathError && error.reason === "escape",
    );
    assert.equal(await Deno.lstat(`${target}/l`).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("extract refuses a symlink through one already in the destination that leads outside", async () => {
  const target = await tempDir();
  try {
    await Deno.symlink("/", `${target}/root`);
    await assert.rejects(
      () => extractTar(streamOf([symlink("etc", "root/etc")]), target),
      (error: unknown) => error instanceof ArchivePathError && error.reason === "escape",
    );
    assert.equal(await Deno.lstat(`${target}/etc`).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("extract: a link to / then an entry below it writes nothing outside", async () => {
  const target = await tempDir();
  const outside = await tempDir();
  try {
    const entries = [symlink("link", "/"), file(`link${outside}/pwned.txt`, "x")];
    await assert.rejects(() => extractTar(streamOf(entries), target), ArchivePathError);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(outside)), []);
  } finally {
    await Deno.remove(target, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("extract: replacing a link that an earlier link climbs out of is caught at the end", async () => {
  const target = await tempDir();
  try {
    // l -> s/../x is inside while s -> a; once s -> ".", s/.. is the root's parent.
    const entries: TarWriteEntry[] = [
      { path: "a", type: "directory", mode: 0o755, size: 0, mtime: 0 },
      symlink("s", "a"),
      symlink("l", "s/../x"),
      symlink("s", "."),
    ];
    await assert.rejects(
      () => extractTar(streamOf(entries), target),
      /symlink "l" points outside the destination/,
    );
    assert.equal(await Deno.lstat(`${target}/l`).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("extract: refuse sees each entry's real path, symlinks in its directory resolved", async () => {
  const target = await tempDir();
  try {
    await Deno.mkdir(`${target}/.git`);
    await Deno.symlink(".git", `${target}/alias`);
    const seen: string[] = [];
    const refuse = (real: string) => {
      seen.push(real);
      return real.includes("/.git/") ? `no writes into ${real}` : undefined;
    };
    await extractTar(streamOf([file("ok.txt", "x")]), target, { refuse });
    await assert.rejects(
      () => extractTar(streamOf([file("alias/hooks/pre-commit", "x")]), target, { refuse }),
      (error: unknown) =>
        error instanceof ArchivePathError && error.reason === "refused" &&
        error.message === `no writes into ${target}/.git/hooks/pre-commit`,
    );
    assert.deepEqual(seen, [`${target}/ok.txt`, `${target}/.git/hooks/pre-commit`]);
    assert.equal(await Deno.lstat(`${target}/.git/hooks`).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});

Deno.test("pack keeps a symlink inside the directory as a symlink, never following it", async () => {
  const source = await tempDir();
  try {
    await Deno.symlink("/", `${source}/root`);
    await Deno.symlink("/etc/passwd", `${source}/passwd`);
    const entries = await listTar(await packDirectory(source));
    assert.deepEqual(
      entries.map((entry) => [entry.path, entry.type, entry.linkTarget]),
      [["passwd", "symlink", "/etc/passwd"], ["root", "symlink", "/"]],
    );
  } finally {
    await Deno.remove(source, { recursive: true });
  }
});
