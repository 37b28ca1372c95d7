import assert from "node:assert/strict";
import { DriverError } from "../contract.ts";
import { engineError } from "./engine.ts";
import { parseEngineHost } from "./engine_address.ts";

const unix = parseEngineHost("unix:///var/run/docker.sock", "DOCKER_HOST");
const tcp = parseEngineHost("tcp://10.0.0.5:2375", "the DSN's host parameter");
const ssh = parseEngineHost("ssh://ci@build.example", "DOCKER_HOST");

function oneLine(error: DriverError): string {
  assert.equal(error.code, "unavailable");
  assert.ok(!error.message.includes("\n"), error.message);
  return error.message;
}

Deno.test("engine errors: socket missing, permission denied, nobody listening", () => {
  const errno = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
  assert.match(
    oneLine(engineError(unix, errno("ENOENT"))),
    /socket \/var\/run\/docker\.sock \(DOCKER_HOST\) does not exist; start dockerd/,
  );
  assert.match(
    oneLine(engineError(unix, errno("EACCES"))),
    /permission denied on \/var\/run\/docker\.sock; add your user to the docker group \(usermod -aG docker \$USER/,
  );
  assert.match(
    oneLine(engineError(unix, errno("ECONNREFUSED"))),
    /nothing listens on \/var\/run\/docker\.sock \(DOCKER_HOST\); dockerd is not running/,
  );
  assert.match(
    oneLine(engineError(tcp, errno("ECONNREFUSED"))),
    /at tcp:\/\/10\.0\.0\.5:2375 \(the DSN's host parameter\): ECONNREFUSED; check that dockerd listens there/,
  );
  assert.match(oneLine(engineError(tcp, errno("ENOTFOUND"))), /ENOTFOUND/);
});

Deno.test("engine errors: Deno's permission refusal points at pocketci permissions", () => {
  const denied = Object.assign(new Error('Requires net access to "unix:/var/run/docker.sock"'), {
    name: "NotCapable",
  });
  assert.match(
    oneLine(engineError(unix, denied)),
    /Deno denied access .*pocketci permissions --driver=docker/,
  );
});

Deno.test("engine errors: ssh channel refusals and other errors stay one line", () => {
  assert.match(
    oneLine(engineError(ssh, new Error("(SSH) Channel open failure: open failed"))),
    /through ssh: .*check that dockerd runs on the host and ci may use \/var\/run\/docker\.sock/,
  );
  assert.match(
    oneLine(engineError(unix, new Error("first line\nsecond line"))),
    /: first line; point/,
  );
  const kept = new DriverError("unavailable", "already clear");
  assert.equal(engineError(unix, kept), kept);
});
