/**
 * A minimal QMP (QEMU Machine Protocol) client over the VM's monitor socket: the greeting,
 * capabilities negotiation, and commands answered in order (events are skipped). The driver
 * uses it to ask QEMU to quit and to read the VM's run state.
 *
 * @module
 */

import { connectUnix, LineChannel } from "./line_channel.ts";

interface Waiter {
  readonly command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** A connected QMP monitor. */
export class QmpClient {
  readonly #channel: LineChannel;
  readonly #waiters: Waiter[] = [];
  #greeted!: () => void;
  readonly #greeting = new Promise<void>((resolve) => this.#greeted = resolve);
  #closed: Error | undefined;

  private constructor(conn: Deno.Conn) {
    this.#channel = new LineChannel(conn, (line) => this.#receive(line.text), (error) => {
      this.#closed ??= new Error(`QMP connection closed${error ? `: ${error.message}` : ""}`);
      for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#closed);
      this.#greeted();
    });
  }

  /** Connects to `path` (retrying until `deadline` while QEMU creates it) and negotiates. */
  static async connect(path: string, deadline: number, signal?: AbortSignal): Promise<QmpClient> {
    const client = new QmpClient(await connectUnix(path, deadline, signal));
    try {
      await client.#greeting;
      await client.execute("qmp_capabilities", undefined, Math.max(1000, deadline - Date.now()));
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Runs a command and resolves with its `return` value. */
  execute<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The slot stays so the late reply is not taken for another command's.
        waiter.resolve = () => {};
        waiter.reject = () => {};
        reject(new Error(`QMP: no reply to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        command,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#waiters.push(waiter);
      this.#channel.writeJson(
        args === undefined ? { execute: command } : { execute: command, arguments: args },
      )
        .catch((error: Error) =>
          waiter.reject(new Error(`QMP: could not send ${command}: ${error.message}`))
        );
    });
  }

  /** Closes the connection. */
  close(): void {
    this.#channel.close();
  }

  /** Resolves when the connection ended (QEMU exited or {@link close} was called). */
  get done(): Promise<void> {
    return this.#channel.done;
  }

  #receive(text: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if ("QMP" in message) {
      this.#greeted();
      return;
    }
    if ("event" in message) return;
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    if ("error" in message) {
      const error = message.error as { desc?: string };
      waiter.reject(new Error(`QMP: ${waiter.command}: ${error.desc ?? text}`));
    } else {
      waiter.resolve(message.return);
    }
  }
}
