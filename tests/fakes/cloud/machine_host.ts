/**
 * The real machines behind the fake cloud APIs: each fake machine is an OpenSSH server on its own
 * loopback address (127.x.y.z, port 22) whose host key is the one the machine's cloud-init
 * user_data carried (`ssh_keys.ed25519_private`) and whose authorized keys are the public keys
 * registered at the fake provider. Its Docker is the local dockerd: sshd's streamlocal forwarding
 * reaches `/var/run/docker.sock`, which is how the docker driver's SSH transport talks to an
 * engine.
 *
 * Needs Debian's openssh-server and root, like `tests/docker/sshd_fixture.ts`.
 *
 * @module
 */

export { sshdProblem } from "../../docker/sshd_fixture.ts";

/** What the fake provider gives a machine to boot. */
export interface MachineBoot {
  /** The user_data text as the API received it. */
  readonly userData?: string;
  /** Public keys (`ssh-ed25519 AAAA...`) to authorize for root. */
  readonly authorizedKeys: readonly string[];
}

/** One running fake machine. */
export interface FakeMachine {
  /** Its loopback address. */
  readonly ip: string;
  /** sshd's stderr so far. */
  log(): string;
  /** Stops sshd and removes its files. Safe to call more than once. */
  stop(): Promise<void>;
}

/** The parts of a `#cloud-config` document the fakes read (the drivers write it as JSON, which is YAML). */
export interface CloudConfig {
  /** Host keys (cloud-init's `ssh_keys` module). */
  readonly ssh_keys?: { readonly ed25519_private?: string; readonly ed25519_public?: string };
  /** Extra authorized keys. */
  readonly ssh_authorized_keys?: readonly string[];
  /** Anything else. */
  readonly [key: string]: unknown;
}

/** Parses user_data written as `#cloud-config` followed by a JSON document; undefined otherwise. */
export function parseCloudConfig(userData: string | undefined): CloudConfig | undefined {
  if (!userData?.startsWith("#cloud-config\n")) return undefined;
  try {
    return JSON.parse(userData.slice("#cloud-config\n".length)) as CloudConfig;
  } catch {
    return undefined;
  }
}

const used = new Set<string>();

/** A loopback address nobody listens on at port 22 (random, so parallel test processes rarely meet). */
export function freeLoopbackAddress(): string {
  for (let attempt = 0; attempt < 200; attempt++) {
    const bytes = crypto.getRandomValues(new Uint8Array(3));
    const ip = `127.${100 + (bytes[0] % 100)}.${bytes[1]}.${2 + (bytes[2] % 250)}`;
    if (used.has(ip)) continue;
    try {
      const listener = Deno.listen({ hostname: ip, port: 22 });
      listener.close();
      used.add(ip);
      return ip;
    } catch {
      // Taken: try another.
    }
  }
  throw new Error("no free loopback address with port 22 after 200 tries");
}

/**
 * Boots a machine at `ip`: writes the host key from user_data (a machine without one gets none
 * and sshd refuses to start, as a broken image would) and starts sshd on `ip:22`.
 */
export async function bootMachine(ip: string, boot: MachineBoot): Promise<FakeMachine> {
  const config = parseCloudConfig(boot.userData);
  const hostKey = config?.ssh_keys?.ed25519_private;
  if (!hostKey) throw new Error(`fake machine ${ip}: user_data has no ssh_keys.ed25519_private`);
  await Deno.mkdir("/run/sshd", { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "pocketci-fake-machine-" });
  await Deno.writeTextFile(`${dir}/host_key`, hostKey.endsWith("\n") ? hostKey : `${hostKey}\n`, {
    mode: 0o600,
  });
  const keys = [...boot.authorizedKeys, ...(config?.ssh_authorized_keys ?? [])];
  await Deno.writeTextFile(`${dir}/authorized_keys`, keys.map((k) => `${k.trim()}\n`).join(""));
  const child = new Deno.Command("/usr/sbin/sshd", {
    args: [
      "-D",
      "-e",
      "-f",
      "/dev/null",
      "-h",
      `${dir}/host_key`,
      "-o",
      `ListenAddress=${ip}:22`,
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
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      await child.status;
      await logging;
      // For debugging a failed run: each stopped machine's sshd log, named by its address.
      const logDir = Deno.env.get("POCKETCI_FAKE_SSHD_LOGS");
      if (logDir) await Deno.writeTextFile(`${logDir}/${ip}.log`, log);
      used.delete(ip);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  // Under load (other test files on 2 cores) sshd can take several seconds to listen.
  const deadline = Date.now() + 30_000;
  while (true) {
    try {
      const conn = await Deno.connect({ hostname: ip, port: 22 });
      conn.close();
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`fake machine sshd did not listen on ${ip}:22 within 30 s: ${log.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return { ip, log: () => log, stop };
}
