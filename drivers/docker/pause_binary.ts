/**
 * A "pause" program for the helper image: a static Linux ELF executable of a few instructions that
 * sleeps in a system call forever. It keeps a network-holder container alive (the role the pause
 * container plays in a Kubernetes pod) without depending on any image that has a `sleep`.
 *
 * @module
 */

/** Engine architectures (as `GET /version` reports them) the pause program exists for. */
export type PauseArch = "amd64" | "arm64";

/** ELF `e_machine` and the code of each architecture: an endless loop around a blocking call. */
const MACHINES: Record<PauseArch, { machine: number; code: readonly number[] }> = {
  amd64: {
    machine: 0x3e,
    code: [
      0xb8,
      0x22,
      0x00,
      0x00,
      0x00, // mov eax, 34 (pause)
      0x0f,
      0x05, // syscall
      0xeb,
      0xf7, // jmp back to the mov
    ],
  },
  arm64: {
    // ppoll(NULL, 0, NULL, NULL): no descriptors and no timeout, so it waits for a signal.
    machine: 0xb7,
    code: [
      0xd2800000, // mov x0, #0
      0xd2800001, // mov x1, #0
      0xd2800002, // mov x2, #0
      0xd2800003, // mov x3, #0
      0xd2800928, // mov x8, #73 (ppoll)
      0xd4000001, // svc #0
      0x17fffffa, // b back to the first mov
    ].flatMap((word) => [word & 0xff, (word >>> 8) & 0xff, (word >>> 16) & 0xff, word >>> 24]),
  },
};

const LOAD_ADDRESS = 0x400000n;
const HEADER_SIZE = 64;
const PROGRAM_HEADER_SIZE = 56;

/** The architectures a pause program can be built for. */
export const PAUSE_ARCHES: readonly PauseArch[] = ["amd64", "arm64"];

/** Whether the engine's architecture has a pause program. */
export function isPauseArch(arch: string): arch is PauseArch {
  return (PAUSE_ARCHES as readonly string[]).includes(arch);
}

/** The path of the pause program inside the helper image. */
export function pausePath(arch: PauseArch): string {
  return `/pause-${arch}`;
}

/**
 * A static, little-endian ELF64 executable with one loadable segment holding the code, and a
 * PT_GNU_STACK header asking for a non-executable stack (hardened hosts refuse executables
 * without one).
 */
export function pauseBinary(arch: PauseArch): Uint8Array {
  const { machine, code } = MACHINES[arch];
  const codeOffset = HEADER_SIZE + 2 * PROGRAM_HEADER_SIZE;
  const size = codeOffset + code.length;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]); // magic, 64-bit, little-endian, v1, System V
  view.setUint16(16, 2, true); // ET_EXEC
  view.setUint16(18, machine, true);
  view.setUint32(20, 1, true); // EV_CURRENT
  view.setBigUint64(24, LOAD_ADDRESS + BigInt(codeOffset), true); // entry point
  view.setBigUint64(32, BigInt(HEADER_SIZE), true); // program headers right after this header
  view.setUint16(52, HEADER_SIZE, true);
  view.setUint16(54, PROGRAM_HEADER_SIZE, true);
  view.setUint16(56, 2, true); // two program headers
  const ph = HEADER_SIZE;
  view.setUint32(ph, 1, true); // PT_LOAD
  view.setUint32(ph + 4, 5, true); // readable, executable
  view.setBigUint64(ph + 8, 0n, true); // the whole file from offset 0...
  view.setBigUint64(ph + 16, LOAD_ADDRESS, true); // ...mapped at the load address
  view.setBigUint64(ph + 24, LOAD_ADDRESS, true);
  view.setBigUint64(ph + 32, BigInt(size), true);
  view.setBigUint64(ph + 40, BigInt(size), true);
  view.setBigUint64(ph + 48, 0x1000n, true);
  const stack = ph + PROGRAM_HEADER_SIZE;
  view.setUint32(stack, 0x6474e551, true); // PT_GNU_STACK
  view.setUint32(stack + 4, 6, true); // readable, writable, not executable
  view.setBigUint64(stack + 48, 16n, true);
  bytes.set(code, codeOffset);
  return bytes;
}
