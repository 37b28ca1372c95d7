import assert from "node:assert/strict";
import {
  decideSupport,
  parseMountInfo,
  parseProbe,
  parseProcCgroup,
  planFromDump,
} from "./cgroup_detect.ts";
import { limitWrites, parseOomKills } from "./cgroup_limits.ts";
import { DriverError } from "../contract.ts";

const ok = (stdout: string) => ({ code: 0, stdout, stderr: "" });

/** This machine's layout: hybrid, v1 memory and cpu, v2 mounted without controllers. */
const HYBRID_CGROUP = `9:name=systemd:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
`;
const HYBRID_MOUNTS = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const V2_CGROUP = "0::/user.slice/session-1.scope\n";
const V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

function probe(lines: string): ReturnType<typeof parseProbe> {
  return parseProbe(ok(lines));
}

Deno.test("cgroup detect: /proc/self/cgroup and mountinfo are parsed, escapes included", () => {
  assert.deepEqual(parseProcCgroup(HYBRID_CGROUP)[1], {
    id: "4",
    controllers: ["memory"],
    path: "/process_api/abc",
  });
  assert.deepEqual(parseProcCgroup("0::/a:b\n")[0].path, "/a:b");
  const mounts = parseMountInfo(
    HYBRID_MOUNTS +
      "50 31 0:40 /docker/x /sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,cpu,cpuacct\n",
  );
  assert.deepEqual(mounts.map((m) => m.mountPoint), [
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/with space",
  ]);
  assert.deepEqual(mounts[4].controllers, ["rw", "cpu", "cpuacct"]);
  assert.equal(mounts[4].root, "/docker/x");
});

Deno.test("cgroup detect: hybrid host with writable v1 hierarchies uses v1 under the runner's own groups", () => {
  const plan = planFromDump(ok(`${HYBRID_CGROUP}@@\n${HYBRID_MOUNTS}`));
  assert.ok("candidates" in plan);
  assert.deepEqual(plan.candidates, [
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/memory/process_api/abc",
    "/sys/fs/cgroup/cpu",
  ]);
  const probes = probe(`dir /sys/fs/cgroup/unified
exists
writable
file cgroup.procs w
file cgroup.subtree_control w
controllers hugetlb
subtree
procs 40
dir /sys/fs/cgroup/memory/process_api/abc
exists
writable
file cgroup.procs w
file memory.limit_in_bytes w
file memory.memsw.limit_in_bytes w
dir /sys/fs/cgroup/cpu
exists
writable
file cgroup.procs w
file cpu.cfs_quota_us w
`);
  assert.deepEqual(decideSupport(plan, probes), {
    available: true,
    layout: {
      version: 1,
      memoryParent: "/sys/fs/cgroup/memory/process_api/abc",
      cpuParent: "/sys/fs/cgroup/cpu",
      swap: true,
      enableInParent: false,
    },
  });
  const readOnly = probe(`dir /sys/fs/cgroup/memory/process_api/abc
exists
file cgroup.procs r
file memory.limit_in_bytes r
dir /sys/fs/cgroup/cpu
exists
file cgroup.procs r
file cpu.cfs_quota_us r
`);
  const refused = decideSupport(plan, readOnly);
  assert.equal(refused.available, false);
  assert.match(
    !refused.available ? refused.reason : "",
    /^the cgroup v1 group \/sys\/fs\/cgroup\/memory\/process_api\/abc is not writable by this user; run as root .*; or use --driver=docker$/,
  );
});

Deno.test("cgroup detect: v2 uses the runner's group when it is the root, else the writable root, else says why", () => {
  const rootPlan = planFromDump(ok(`0::/\n@@\n${V2_MOUNTS}`));
  assert.ok("candidates" in rootPlan);
  assert.deepEqual(rootPlan.candidates, ["/sys/fs/cgroup"]);
  const root = decideSupport(
    rootPlan,
    probe(`dir /sys/fs/cgroup
exists
writable
file cgroup.procs w
file cgroup.subtree_control w
controllers cpuset cpu io memory pids
subtree
procs 120
`),
  );
  assert.deepEqual(root, {
    available: true,
    layout: {
      version: 2,
      memoryParent: "/sys/fs/cgroup",
      cpuParent: "/sys/fs/cgroup",
      swap: true,
      enableInParent: true,
    },
  });

  const plan = planFromDump(ok(`${V2_CGROUP}@@\n${V2_MOUNTS}`));
  assert.ok("candidates" in plan);
  assert.deepEqual(plan.candidates, [
    "/sys/fs/cgroup/user.slice/session-1.scope",
    "/sys/fs/cgroup",
  ]);
  const own = `dir /sys/fs/cgroup/user.slice/session-1.scope
exists
writable
file cgroup.procs w
file cgroup.type w
file cgroup.subtree_control w
file memory.max w
controllers cpu memory pids
subtree
procs 3
`;
  const rootWritable = `dir /sys/fs/cgroup
exists
writable
file cgroup.procs w
file cgroup.subtree_control w
controllers cpu memory pids
subtree cpu memory pids
procs 1
`;
  const viaRoot = decideSupport(plan, probe(own + rootWritable));
  assert.ok(viaRoot.available);
  assert.equal(viaRoot.layout.memoryParent, "/sys/fs/cgroup");
  assert.equal(viaRoot.layout.enableInParent, false);

  const busy = decideSupport(plan, probe(own + rootWritable.replace(/\nwritable|( w)$/gm, "")));
  assert.equal(busy.available, false);
  assert.match(
    busy.available ? "" : busy.reason,
    /session-1\.scope holds processes, so its memory and cpu controllers cannot be enabled/,
  );

  const user = decideSupport(
    plan,
    probe(own.replace(/\nwritable|( w)$/gm, "") + rootWritable.replace(/\nwritable/, "")),
  );
  assert.equal(user.available, false);
  assert.match(
    user.available ? "" : user.reason,
    /^cgroup v2 memory and cpu controllers are not delegated to this user .*run as root.*; or use --driver=docker$/,
  );
});

Deno.test("cgroup detect: no cgroup mounts, or an unreadable /proc, explain themselves", () => {
  const none = planFromDump(ok("0::/\n@@\n22 1 0:21 / /proc rw - proc proc rw\n"));
  assert.ok("candidates" in none);
  assert.deepEqual(decideSupport(none, new Map()), {
    available: false,
    reason:
      "no cgroup hierarchy with the memory and cpu controllers is mounted; or use --driver=docker",
  });
  const failed = planFromDump({
    code: 1,
    stdout: "",
    stderr: "cat: /proc/self/cgroup: No such file\n",
  });
  assert.ok("reason" in failed);
  assert.match(failed.reason, /could not read \/proc\/self\/cgroup \(cat: .*No such file\)/);
});

Deno.test("cgroup limits: cores and bytes become the interface files of each version", () => {
  const v1 = {
    version: 1,
    memoryParent: "/m",
    cpuParent: "/c",
    swap: true,
    enableInParent: false,
  } as const;
  assert.deepEqual(
    limitWrites(v1, { cpu: 0.5, memoryBytes: 32 * 1024 * 1024 }).map((w) => [
      w.parent,
      w.file,
      w.value,
    ]),
    [
      ["/m", "memory.limit_in_bytes", "33554432"],
      ["/m", "memory.memsw.limit_in_bytes", "33554432"],
      ["/c", "cpu.cfs_period_us", "100000"],
      ["/c", "cpu.cfs_quota_us", "50000"],
    ],
  );
  const v2 = { ...v1, version: 2, memoryParent: "/g", cpuParent: "/g" } as const;
  assert.deepEqual(
    limitWrites(v2, { cpu: 2, memoryBytes: 1.5 * 1024 }).map((w) => [w.file, w.value]),
    [["memory.max", "1536"], ["memory.swap.max", "0"], ["cpu.max", "200000 100000"]],
  );
  assert.equal(limitWrites(v2, { cpu: 0.0001 })[0].value, "1000 100000", "kernel minimum 1 ms");
  assert.deepEqual(limitWrites({ ...v1, swap: false }, { memoryBytes: 4096 }).length, 1);
  for (const limits of [{ cpu: 0 }, { cpu: Number.NaN }, { memoryBytes: -1 }, { memoryBytes: 0 }]) {
    assert.throws(
      () => limitWrites(v1, limits),
      (error: unknown) => error instanceof DriverError && error.code === "invalid",
    );
  }
});

Deno.test("cgroup limits: the OOM kill counter is read from v1 oom_control and v2 memory.events", () => {
  assert.equal(parseOomKills("@oom\noom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 2);
  assert.equal(
    parseOomKills("@oom\nlow 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n"),
    1,
  );
  assert.equal(parseOomKills("@oom\noom_kill_disable 0\nunder_oom 0\n@failcnt 0\n"), 0);
  assert.equal(parseOomKills("@oom\noom_kill_disable 0\nunder_oom 0\n@failcnt 7\n"), 1);
  assert.equal(parseOomKills(""), 0);
});
