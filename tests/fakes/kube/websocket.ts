/**
 * A server-side WebSocket (RFC 6455) over the raw socket of a node:https `upgrade` event:
 * the handshake with subprotocol choice, masked client frames in (fragments joined, pings
 * answered), unmasked binary frames out, close frames both ways.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { Buffer } from "node:buffer";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** An accepted WebSocket connection. */
export interface ServerSocket {
  /** The chosen subprotocol. */
  readonly protocol: string;
  /** Sends one binary message. */
  send(data: Uint8Array): void;
  /** Sends a close frame (once) and ends the socket. */
  close(code?: number): void;
  /** Called with each complete message. */
  onMessage: (data: Uint8Array) => void;
  /** Called once when the connection ends (close frame or socket end). */
  onClose: () => void;
}

/** Answers a plain HTTP error on an upgrade socket. */
export function rejectUpgrade(socket: Duplex, code: number, body: string): void {
  socket.end(
    `HTTP/1.1 ${code} Error\r\nContent-Type: application/json\r\nContent-Length: ${
      Buffer.byteLength(body)
    }\r\nConnection: close\r\n\r\n${body}`,
  );
}

function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(head + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = len;
  else if (len < 65536) {
    out[1] = 126;
    new DataView(out.buffer).setUint16(2, len);
  } else {
    out[1] = 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(len));
  }
  out.set(payload, head);
  return out;
}

/**
 * Completes the handshake choosing the first of `protocols` the client offered; `undefined`
 * (after a 400 answer) when it offered none of them.
 */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Uint8Array,
  protocols: readonly string[],
): ServerSocket | undefined {
  const offered = String(req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) =>
    p.trim()
  );
  const protocol = protocols.find((p) => offered.includes(p));
  const key = req.headers["sec-websocket-key"];
  if (!protocol || typeof key !== "string") {
    rejectUpgrade(
      socket,
      400,
      JSON.stringify({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: `none of the offered subprotocols [${offered.join(", ")}] is supported`,
        reason: "BadRequest",
        code: 400,
      }),
    );
    return undefined;
  }
  const accept = createHash("sha1").update(key + GUID).digest("base64");
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
  );
  let closed = false;
  let buf: Uint8Array = new Uint8Array(head);
  let fragments: Uint8Array[] = [];
  const ws: ServerSocket = {
    protocol,
    send(data) {
      if (!closed) socket.write(frame(2, data));
    },
    close(code = 1000) {
      if (closed) return;
      closed = true;
      const body = new Uint8Array(2);
      new DataView(body.buffer).setUint16(0, code);
      socket.end(frame(8, body));
      ws.onClose();
    },
    onMessage: () => {},
    onClose: () => {},
  };
  const parse = () => {
    while (buf.length >= 2) {
      const opcode = buf[0] & 0x0f;
      const fin = (buf[0] & 0x80) !== 0;
      const masked = (buf[1] & 0x80) !== 0;
      let len = buf[1] & 0x7f;
      let offset = 2;
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      if (len === 126) {
        if (buf.length < 4) return;
        len = view.getUint16(2);
        offset = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(view.getBigUint64(2));
        offset = 10;
      }
      const maskAt = offset;
      if (masked) offset += 4;
      if (buf.length < offset + len) return;
      const payload = buf.slice(offset, offset + len);
      if (masked) { for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i % 4)]; }
      buf = buf.slice(offset + len);
      if (opcode === 8) {
        if (!closed) {
          closed = true;
          socket.end(frame(8, payload.slice(0, 2)));
          ws.onClose();
        }
        return;
      }
      if (opcode === 9) socket.write(frame(10, payload));
      else if (opcode === 0 || opcode === 1 || opcode === 2) {
        fragments.push(payload);
        if (fin) {
          const total = fragments.reduce((n, f) => n + f.length, 0);
          const msg = new Uint8Array(total);
          let at = 0;
          for (const f of fragments) {
            msg.set(f, at);
            at += f.length;
          }
          fragments = [];
          ws.onMessage(msg);
        }
      }
    }
  };
  socket.on("data", (chunk: Uint8Array) => {
    const joined = new Uint8Array(buf.length + chunk.length);
    joined.set(buf);
    joined.set(chunk, buf.length);
    buf = joined;
    parse();
  });
  const ended = () => {
    if (!closed) {
      closed = true;
      ws.onClose();
    }
  };
  socket.on("end", ended);
  socket.on("close", ended);
  socket.on("error", ended);
  queueMicrotask(parse);
  return ws;
}
