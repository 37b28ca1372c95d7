import assert from "node:assert/strict";
import { concatBytes } from "../drivers/bytes.ts";
import { type SyncWriter, writeTextSync } from "./write_text.ts";

/** A writer that takes at most `most` bytes per call and keeps copies of them. */
function shortWriter(most: number): SyncWriter & { bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    writeSync(bytes) {
      const taken = bytes.slice(0, Math.min(most, bytes.length));
      parts.push(taken);
      return taken.length;
    },
    bytes() {
      return concatBytes(parts);
    },
  };
}

Deno.test("writeTextSync writes every byte in order through short writes", () => {
  // Longer than the 64 KiB buffer, with multi-byte characters across its boundaries.
  const text = "aé€😀\n".repeat(20_000);
  for (const most of [1, 7, 4096, 1 << 20]) {
    const writer = shortWriter(most);
    writeTextSync(writer, text);
    writeTextSync(writer, "");
    writeTextSync(writer, "end");
    assert.deepEqual(writer.bytes(), new TextEncoder().encode(text + "end"), `at most ${most}`);
  }
});

Deno.test("writeTextSync lets a failed write throw", () => {
  const failing: SyncWriter = {
    writeSync() {
      throw new Deno.errors.BrokenPipe("broken pipe");
    },
  };
  assert.throws(() => writeTextSync(failing, "x"), Deno.errors.BrokenPipe);
});

Deno.test("writeTextSync writes to a file", async () => {
  const path = await Deno.makeTempFile();
  try {
    const file = await Deno.open(path, { write: true });
    writeTextSync(file, "héllo ");
    writeTextSync(file, "x".repeat(100_000));
    file.close();
    assert.equal(await Deno.readTextFile(path), "héllo " + "x".repeat(100_000));
  } finally {
    await Deno.remove(path);
  }
});
