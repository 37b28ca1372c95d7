import assert from "node:assert/strict";
import { Demuxer } from "./demux.ts";

function frame(type: number, text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + payload.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(4, payload.length);
  out.set(payload, 8);
  return out;
}

Deno.test("demux: frames split anywhere are delivered in order per stream, as soon as bytes arrive", () => {
  const got: [string, string][] = [];
  const demuxer = new Demuxer((stream, chunk) =>
    got.push([stream, new TextDecoder().decode(chunk)])
  );
  const all = new Uint8Array([
    ...frame(1, "hello "),
    ...frame(2, "oops"),
    ...frame(1, "world"),
    ...frame(0, "stdin-echo"),
  ]);
  // Byte by byte: headers split across pushes, payloads delivered piecewise.
  for (const byte of all) demuxer.push(new Uint8Array([byte]));
  const joined = (s: string) => got.filter(([k]) => k === s).map(([, t]) => t).join("");
  assert.equal(joined("stdout"), "hello world");
  assert.equal(joined("stderr"), "oops");
  assert.ok(got.length > 3, "payload bytes are passed on before a frame is complete");
});

Deno.test("demux: several frames in one chunk", () => {
  const got: string[] = [];
  const demuxer = new Demuxer((stream, chunk) =>
    got.push(`${stream}:${new TextDecoder().decode(chunk)}`)
  );
  demuxer.push(new Uint8Array([...frame(1, "a"), ...frame(2, "b"), ...frame(3, "c")]));
  assert.deepEqual(got, ["stdout:a", "stderr:b", "stderr:c"]);
});
