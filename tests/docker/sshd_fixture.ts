/**
 * A real OpenSSH server on 127.0.0.1 for the docker-over-SSH tests: a fresh host key, a fresh
 * client key in a throw-away home directory (`<home>/.ssh/id_ed25519`), an authorized_keys file
 * and a known_hosts entry (plain or hashed). Nothing outside its temp dir is touched.
 *
 * Needs Debian's openssh-server (`/usr/sbin/sshd`, `ssh-keygen`) and root (sshd's privilege
 * separation); `.ci/setup_sshd.sh` installs it.
 *
 * @module
 */

/** A running sshd and the client side that trusts it. */
export interface SshdFixture {
  /** The fixture's temp dir (host key, `authorized_keys`). */
  readonly dir: string;
  /** The port sshd listens on (127.0.0.1). */
  readonly port: number;
  /** A home directory with `.ssh/id_ed25519` and `.ssh/known_hosts` for this server. */
  readonly home: string;
  /** The server's host public key line (`ssh-ed25519 AAAA...`). */
  readonly hostKey: string;
  /** The client's private key (OpenSSH format). */
  readonly clientKey: string;
  /** `ssh://root@127.0.0.1:PORT`. */
  readonly url: string;
  /** sshd's stderr so far (for failure messages). */
  log(): string;
  /** Stops sshd and removes the temp dir. */
  stop(): Promise<void>;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** Why sshd cannot be used here, or undefined. */
export async function sshdProblem(): Promise<string | undefined> {
  for (const path of ["/usr/sbin/sshd", "/usr/bin/ssh-keygen"]) {
    try {
      await Deno.stat(path);
    } catch {
      return `${path} is missing; install openssh-server (.ci/setup_sshd.sh)`;
    }
  }
  return undefined;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts sshd; `hashed` writes the known_hosts entry in hashed form (`|1|salt|hash`). */
export async function startSshd(options: { hashed?: boolean } = {}): Promise<SshdFixture> {
  const problem = await sshdProblem();
  if (problem) throw new Error(problem);
  await Deno.mkdir("/run/sshd", { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "pocketci-sshd-" });
  const home = `${dir}/home`;
  await Deno.mkdir(`${home}/.ssh`, { recursive: true, mode: 0o700 });
  const keygen = (comment: string, path: string) =>
    run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]);
  await keygen("pocketci-test-host", `${dir}/host_key`);
  await keygen("pocketci-test-client", `${home}/.ssh/id_ed25519`);
  await Deno.copyFile(`${home}/.ssh/id_ed25519.pub`, `${dir}/authorized_keys`);
  const hostKey = (await Deno.readTextFile(`${dir}/host_key.pub`)).trim().split(" ").slice(0, 2)
    .join(" ");
  const port = freePort();
  await Deno.writeTextFile(`${home}/.ssh/known_hosts`, `[127.0.0.1]:${port} ${hostKey}\n`);
  if (options.hashed) await run("ssh-keygen", ["-q", "-H", "-f", `${home}/.ssh/known_hosts`]);
  await Deno.remove(`${home}/.ssh/known_hosts.old`).catch(() => {});
  const child = new Deno.Command("/usr/sbin/sshd", {
    args: [
      "-D",
      "-e",
      "-f",
      "/dev/null",
      "-p",
      String(port),
      "-h",
      `${dir}/host_key`,
      "-o",
      "ListenAddress=127.0.0.1",
      "-o",
      `AuthorizedKeysFile=${dir}/authorized_keys`,
      "-o",
      "StrictModes=no",
      "-o",
      "PermitRootLogin=prohibit-password",
      "-o",
      "PasswordAuthentication=no",
      "-o",
      "PidFile=none",
      "-o",
      "AllowStreamLocalForwarding=yes",
      "-o",
      "MaxSessions=100",
      "-o",
      "MaxStartups=100",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const decoder = new TextDecoder();
  const logging = child.stderr.pipeTo(
    new WritableStream({ write: (chunk) => void (log += decoder.decode(chunk, { stream: true })) }),
  ).catch(() => {});
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await child.status;
    await logging;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const deadline = Date.now() + 10_000;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`sshd did not listen on 127.0.0.1:${port} within 10 s: ${log.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    dir,
    port,
    home,
    hostKey,
    clientKey: await Deno.readTextFile(`${home}/.ssh/id_ed25519`),
    url: `ssh://root@127.0.0.1:${port}`,
    log: () => log,
    stop,
  };
}
