import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Client } from "ssh2";
import { disableNagleOnServer } from "./connection.ts";

type Exec = Client["exec"];

function fakeClient(
  exec: (command: string, callback: (error?: Error, channel?: unknown) => void) => void,
) {
  return { exec: exec as unknown as Exec };
}

function fakeChannel(): EventEmitter & { stderr: EventEmitter } {
  return Object.assign(new EventEmitter(), { stderr: new EventEmitter() });
}

Deno.test("ssh: the no-op command that turns off Nagle on the server runs once and is awaited until its channel closes", async () => {
  const commands: string[] = [];
  const channel = fakeChannel();
  let settled = false;
  const pending = disableNagleOnServer(
    fakeClient((command, callback) => {
      commands.push(command);
      callback(undefined, channel);
    }),
  ).then(() => settled = true);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(settled, false, "resolved before the command's channel closed");
  channel.emit("close");
  await pending;
  assert.deepEqual(commands, ["true"]);
});

Deno.test("ssh: a server that refuses commands, throws, or never answers does not stop the connection", async () => {
  await disableNagleOnServer(fakeClient((_c, callback) => callback(new Error("refused"))));
  await disableNagleOnServer(fakeClient(() => {
    throw new Error("not connected");
  }));
  await disableNagleOnServer(fakeClient(() => {}), 30);
});

Deno.test("ssh: a command that never ends (a forced command) has its channel closed after the wait", async () => {
  let closed = 0;
  const channel = Object.assign(fakeChannel(), { close: () => closed++ });
  await disableNagleOnServer(fakeClient((_c, callback) => callback(undefined, channel)), 30);
  assert.equal(closed, 1);
});
