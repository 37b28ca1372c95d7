import assert from "node:assert/strict";
import { ApiClient, ApiError } from "./api_client.ts";

async function withServer(
  answer: () => Response,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, answer);
  try {
    await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("api client: Hetzner errors whose fields carry no messages still read as one line", async () => {
  const bodies = [
    { details: { fields: [{ name: "name" }] }, expect: /already used \(name\)/ },
    {
      details: { fields: [{ name: "size", messages: ["too small"] }] },
      expect: /\(size: too small\)/,
    },
    { details: { fields: "garbage" }, expect: /already used$/ },
    { details: { fields: [null] }, expect: /already used \(undefined\)/ },
  ];
  for (const { details, expect } of bodies) {
    await withServer(
      () =>
        Response.json({
          error: { code: "uniqueness_error", message: "name is already used", details },
        }, { status: 409 }),
      async (url) => {
        const api = new ApiClient({ provider: "hetzner", baseUrl: url, token: "t0ken-secret" });
        await assert.rejects(api.request("POST", "/placement_groups", { body: {} }), (error) => {
          assert.ok(error instanceof ApiError, String(error));
          assert.equal(error.status, 409);
          assert.match(error.message, expect);
          assert.doesNotMatch(error.message, /t0ken-secret|\n/);
          return true;
        });
      },
    );
  }
});
