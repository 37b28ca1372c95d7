import assert from "node:assert/strict";
import { cloudInitSummary } from "./machine.ts";

Deno.test("cloud-init: nothing to report when the guest has none or it is disabled", () => {
  assert.equal(cloudInitSummary("absent"), undefined);
  assert.equal(cloudInitSummary("disabled"), undefined);
});

Deno.test("cloud-init: result.json names the datasource and any errors on one line", () => {
  assert.equal(
    cloudInitSummary('{"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vdb]", "errors": []}}'),
    "cloud-init done (DataSourceNoCloud [seed=/dev/vdb])",
  );
  const failed = cloudInitSummary(
    '{"v1": {"datasource": null, "errors": ["(\'scripts_user\',\\n RuntimeError(\'runparts: 1 failed\'))"]}}',
  );
  assert.equal(
    failed,
    "cloud-init done with 1 error(s): ('scripts_user', RuntimeError('runparts: 1 failed'))",
  );
  assert.equal(cloudInitSummary("{half"), "cloud-init done (its result.json did not parse)");
});
