import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { defaultNamespace } from "./namespace.ts";
import { findRepository, normalizeRemoteUrl, originUrl } from "./repository.ts";

async function git(cwd: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("git", { args, cwd, stderr: "piped" }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

/** A fresh repository at `<parent>/<name>` with an optional origin remote. */
async function repo(parent: string, name: string, remote?: string): Promise<string> {
  const dir = `${parent}/${name}`;
  await Deno.mkdir(`${dir}/ci/nested`, { recursive: true });
  await git(dir, "init", "-q");
  if (remote !== undefined) await git(dir, "remote", "add", "origin", remote);
  return dir;
}

Deno.test("remote URLs: ssh, scp-like and https forms of one repository agree", () => {
  const forms = [
    "git@github.com:Owner/Repo.git",
    "ssh://git@github.com/Owner/Repo.git",
    "ssh://git@GitHub.com:22/Owner/Repo",
    "https://github.com/Owner/Repo",
    "https://x-access-token:secret@github.com/Owner/Repo.git/",
    "git+ssh://git@github.com/Owner/Repo.git",
  ];
  for (const form of forms) assert.equal(normalizeRemoteUrl(form), "github.com/Owner/Repo", form);
  assert.equal(normalizeRemoteUrl("/srv/git/project.git"), "/srv/git/project");
  assert.equal(normalizeRemoteUrl("file:///srv/git/project.git"), "/srv/git/project");
  assert.notEqual(
    normalizeRemoteUrl("git@gitlab.com:o/r.git"),
    normalizeRemoteUrl("git@github.com:o/r.git"),
  );
});

Deno.test('originUrl: the url of [remote "origin"], not of other remotes', () => {
  const config = `[core]\n\tbare = false\n[remote "upstream"]\n\turl = https://a/up.git\n` +
    `[remote "origin"]\n\turl = git@host:o/r.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n`;
  assert.equal(originUrl(config), "git@host:o/r.git");
  assert.equal(originUrl('[remote "upstream"]\n url = x\n'), undefined);
});

Deno.test("namespace: two checkouts of one remote (ssh and https) agree, whatever the path and pipeline", async () => {
  const root = await Deno.makeTempDir({ prefix: "pocketci-ns-" });
  try {
    const a = await repo(root, "checkout-a", "git@github.com:acme/Widget.git");
    const b = await repo(`${root}`, "builds/job-17/widget", "https://github.com/acme/Widget");
    const nsA = defaultNamespace("ci/build.ts", a);
    assert.match(nsA, /^ci-widget-[0-9a-f]{10}$/);
    assert.equal(defaultNamespace(`${b}/ci/nested/renamed.ts`, "/"), nsA);
    assert.equal(defaultNamespace(undefined, `${a}/ci/nested`), nsA);
    const other = await repo(root, "other", "git@github.com:acme/gadget.git");
    assert.notEqual(defaultNamespace("p.ts", other), nsA);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("namespace: a repository without origin uses its name and git directory; outside, the path", async () => {
  const root = await Deno.makeTempDir({ prefix: "pocketci-ns-" });
  try {
    const local = await repo(root, "Local Project");
    const ns = defaultNamespace("ci/p.ts", local);
    assert.match(ns, /^ci-local-project-[0-9a-f]{10}$/);
    assert.equal(defaultNamespace("ci/nested/q.ts", local), ns, "every pipeline of the repo");
    // A worktree-style checkout: a .git file pointing at the git directory shares it.
    await Deno.mkdir(`${root}/wt`);
    await Deno.writeTextFile(`${root}/wt/.git`, `gitdir: ../Local Project/.git\n`);
    assert.equal(findRepository(`${root}/wt`)?.commonDir, await Deno.realPath(`${local}/.git`));
    assert.equal(defaultNamespace("p.ts", `${root}/wt`).slice(-10), ns.slice(-10));
    // Outside any repository: ci- plus the hash of the absolute pipeline path, as before.
    await Deno.mkdir(`${root}/plain`);
    const hex = createHash("sha256").update(`${root}/plain/p.ts`).digest("hex").slice(0, 10);
    assert.equal(findRepository(`${root}/plain`), undefined);
    assert.equal(defaultNamespace("p.ts", `${root}/plain`), `ci-${hex}`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
