/**
 * The user_data a machine boots with: a `#cloud-config` document written as JSON (JSON is YAML,
 * and cloud-init reads it) that installs the host key this driver generated (so the first SSH
 * connection already verifies it: no trust on first use) and, when `disk_size` asks for one,
 * formats and mounts the attached volume and makes it Docker's data root. The mount and
 * `daemon.json` are set up in cloud-init's init stage (`fs_setup`, `mounts`, `write_files`),
 * which runs before `docker.service` starts, so Docker never starts on the wrong root.
 *
 * @module
 */

import type { KeyPair } from "./keys.ts";

/** Where the Docker data volume is mounted. */
export const DOCKER_DATA_ROOT = "/var/lib/pocketci-docker";

/** What the machine needs at boot. */
export interface CloudInitInput {
  /** The machine's host key pair (ed25519). */
  readonly hostKey: KeyPair;
  /** The block device of the Docker data volume, when there is one. */
  readonly dataDevice?: string;
}

/** Builds the user_data text. */
export function buildUserData(input: CloudInitInput): string {
  const config: Record<string, unknown> = {
    ssh_deletekeys: true,
    ssh_genkeytypes: [],
    ssh_keys: {
      ed25519_private: input.hostKey.privateKey,
      ed25519_public: input.hostKey.publicKey,
    },
    disable_root: false,
  };
  if (input.dataDevice) {
    config.fs_setup = [{
      label: "pocketci",
      filesystem: "ext4",
      device: input.dataDevice,
      overwrite: false,
    }];
    config.mounts = [[
      input.dataDevice,
      DOCKER_DATA_ROOT,
      "ext4",
      "defaults,nofail,discard",
      "0",
      "2",
    ]];
    config.write_files = [{
      path: "/etc/docker/daemon.json",
      permissions: "0644",
      content: JSON.stringify({ "data-root": DOCKER_DATA_ROOT }) + "\n",
    }];
  }
  return `#cloud-config\n${JSON.stringify(config)}`;
}
