import assert from "node:assert/strict";
import { concatBytes } from "../bytes.ts";
import {
  directoriesTar,
  entriesTar,
  generatorStream,
  renameEntries,
  tarEnd,
  tarHeader,
} from "./tar.ts";

const encoder = new TextEncoder();

function fileEntry(name: string, content: string): Uint8Array {
  const data = encoder.encode(content);
  const padded = new Uint8Array(Math.ceil(data.length / 512) * 512);
  padded.set(data);
  return concatBytes([tarHeader({ name, type: "0", size: data.length, mode: 0o644 }), padded]);
}

/** Lists an archive with the system tar (an independent reader). */
async function listWithTar(bytes: Uint8Array): Promise<string[]> {
  const child = new Deno.Command("tar", {
    args: ["-tf", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(bytes);
  await writer.close();
  const out = await child.output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim().split("\n");
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Splits input into odd-sized chunks to exercise the reader's buffering. */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return ReadableStream.from(parts);
}

Deno.test("tar: directory archives are read by the system tar", async () => {
  assert.deepEqual(await listWithTar(directoriesTar(["a", "a/b/"])), ["a/", "a/b/"]);
});

Deno.test("tar: files keep their content and mode when the system tar extracts them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const content = encoder.encode("x".repeat(700));
    const child = new Deno.Command("tar", {
      args: ["-xpf", "-", "-C", dir],
      stdin: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(
      entriesTar([{ name: "d" }, { name: "d/run", data: content, mode: 0o755 }, {
        name: "note",
        data: encoder.encode("hi"),
      }]),
    );
    await writer.close();
    const out = await child.output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    assert.deepEqual(await Deno.readFile(`${dir}/d/run`), content);
    assert.equal((await Deno.stat(`${dir}/d/run`)).mode! & 0o777, 0o755);
    assert.equal(await Deno.readTextFile(`${dir}/note`), "hi");
    assert.equal((await Deno.stat(`${dir}/note`)).mode! & 0o777, 0o644);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: entries are renamed (short and long names), dropped, and data streams through intact", async () => {
  const long = `${"d".repeat(90)}/${"f".repeat(60)}.txt`;
  const input = concatBytes([
    directoriesTar(["."]).subarray(0, 512),
    fileEntry("./one.txt", "first"),
    fileEntry("./two.bin", "x".repeat(1500)),
    tarEnd(),
  ]);
  const renamed = await collect(generatorStream(renameEntries(chunked(input, 333), (name) => {
    const bare = name.replace(/^\.\/?/, "");
    if (bare === "") return null;
    return bare === "two.bin" ? long : `sub/${bare}`;
  })));
  const archive = concatBytes([renamed, tarEnd()]);
  assert.deepEqual(await listWithTar(archive), ["sub/one.txt", long]);
  const dir = await Deno.makeTempDir();
  try {
    const child = new Deno.Command("tar", { args: ["-xf", "-", "-C", dir], stdin: "piped" })
      .spawn();
    const writer = child.stdin.getWriter();
    await writer.write(archive);
    await writer.close();
    assert.ok((await child.status).success);
    assert.equal(await Deno.readTextFile(`${dir}/sub/one.txt`), "first");
    assert.equal(await Deno.readTextFile(`${dir}/${long}`), "x".repeat(1500));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: PAX long names written by GNU tar are read and renamed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const long = "n".repeat(150);
    await Deno.writeTextFile(`${dir}/${long}`, "pax");
    const out = await new Deno.Command("tar", {
      args: ["--format=pax", "-cf", "-", "-C", dir, long],
      stdout: "piped",
    }).output();
    const renamed = await collect(
      generatorStream(renameEntries(chunked(out.stdout, 100), (name) => `p/${name}`)),
    );
    assert.deepEqual(await listWithTar(concatBytes([renamed, tarEnd()])), [`p/${long}`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar: a truncated archive is an error, not a short success", async () => {
  const input = fileEntry("a.txt", "y".repeat(2000)).subarray(0, 1000);
  await assert.rejects(
    () => collect(generatorStream(renameEntries(chunked(input, 64), (n) => n))),
    /truncated/,
  );
});
