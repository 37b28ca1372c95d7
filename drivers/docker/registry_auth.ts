/**
 * Registry credentials for pulls, from the Docker CLI's `config.json` (`$DOCKER_CONFIG` or
 * `~/.docker`): per-registry credential helpers (`credHelpers`), the default store (`credsStore`)
 * and inline `auths` entries.
 *
 * @module
 */

/** What the engine expects in `X-Registry-Auth`. */
export interface RegistryAuth {
  /** User name (absent with an identity token). */
  readonly username?: string;
  /** Password or access token. */
  readonly password?: string;
  /** Refresh token issued by the registry. */
  readonly identitytoken?: string;
  /** The registry address. */
  readonly serveraddress: string;
}

/** The parts of the Docker CLI's `config.json` that hold registry credentials. */
export interface DockerConfigFile {
  /** Inline credentials per registry. */
  auths?: Record<
    string,
    { auth?: string; username?: string; password?: string; identitytoken?: string }
  >;
  /** A credential helper per registry (`docker-credential-<name>`). */
  credHelpers?: Record<string, string>;
  /** The default credential helper. */
  credsStore?: string;
}

const DOCKER_HUB = "https://index.docker.io/v1/";

/** The registry host an image reference pulls from (`docker.io` for short names). */
export function registryOf(image: string): string {
  const first = image.split("/")[0];
  if (
    image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost")
  ) return first;
  return "docker.io";
}

/** The keys `config.json` may use for a registry, most specific first. */
function configKeys(registry: string): string[] {
  if (registry === "docker.io") {
    return [DOCKER_HUB, "index.docker.io", "docker.io", "registry-1.docker.io"];
  }
  return [
    registry,
    `https://${registry}`,
    `http://${registry}`,
    `https://${registry}/v1/`,
    `https://${registry}/v2/`,
  ];
}

/** The path of the Docker CLI config file. */
export function dockerConfigPath(
  env: { DOCKER_CONFIG?: string; HOME?: string },
): string | undefined {
  if (env.DOCKER_CONFIG) return `${env.DOCKER_CONFIG}/config.json`;
  return env.HOME ? `${env.HOME}/.docker/config.json` : undefined;
}

/** Reads and parses the config file; a missing file means no credentials. */
export async function readDockerConfig(path: string | undefined): Promise<DockerConfigFile> {
  if (!path) return {};
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
  try {
    return JSON.parse(text) as DockerConfigFile;
  } catch {
    throw new Error(`${path} is not valid JSON; fix or remove it`);
  }
}

/** Runs `docker-credential-<helper> get` for a registry. */
async function fromHelper(
  helper: string,
  server: string,
  env?: Record<string, string>,
): Promise<RegistryAuth | undefined> {
  const command = new Deno.Command(`docker-credential-${helper}`, {
    args: ["get"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env,
  });
  let child: Deno.ChildProcess;
  try {
    child = command.spawn();
  } catch (error) {
    throw new Error(
      `credential helper docker-credential-${helper} (from ~/.docker/config.json) cannot be run: ${
        (error as Error).message
      }`,
    );
  }
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(server));
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    // Helpers answer "credentials not found" when they have nothing for the server.
    if (/not found/i.test(text)) return undefined;
    throw new Error(
      `docker-credential-${helper} get failed for ${server}: ${text.trim().split("\n")[0]}`,
    );
  }
  const parsed = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    Username?: string;
    Secret?: string;
  };
  if (!parsed.Secret) return undefined;
  if (parsed.Username === "<token>") return { identitytoken: parsed.Secret, serveraddress: server };
  return { username: parsed.Username, password: parsed.Secret, serveraddress: server };
}

/**
 * The credentials configured for the registry an image comes from, if any. `helperEnv` adds
 * variables for credential helpers (the process environment is passed on as well).
 */
export async function authForImage(
  image: string,
  config: DockerConfigFile,
  helperEnv?: Record<string, string>,
): Promise<RegistryAuth | undefined> {
  const registry = registryOf(image);
  const keys = configKeys(registry);
  const server = registry === "docker.io" ? DOCKER_HUB : registry;
  for (const key of keys) {
    const helper = config.credHelpers?.[key];
    if (helper) return await fromHelper(helper, server, helperEnv);
  }
  for (const key of keys) {
    const entry = config.auths?.[key];
    if (!entry) continue;
    if (entry.identitytoken) return { identitytoken: entry.identitytoken, serveraddress: server };
    if (entry.auth) {
      const decoded = atob(entry.auth);
      const colon = decoded.indexOf(":");
      return {
        username: decoded.slice(0, colon),
        password: decoded.slice(colon + 1),
        serveraddress: server,
      };
    }
    if (entry.username) {
      return { username: entry.username, password: entry.password, serveraddress: server };
    }
  }
  if (config.credsStore) return await fromHelper(config.credsStore, server, helperEnv);
  return undefined;
}

/** The credential helpers a config names (for the `run` permission). */
export function credentialHelpers(config: DockerConfigFile): string[] {
  const helpers = new Set(Object.values(config.credHelpers ?? {}));
  if (config.credsStore) helpers.add(config.credsStore);
  return [...helpers].map((h) => `docker-credential-${h}`);
}
