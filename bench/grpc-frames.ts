/**
 * gRPC and gRPC-Web framing, for raw requests and the floor servers: the length-prefixed message
 * and the gRPC-Web trailer frame.
 */

/** A gRPC / gRPC-Web length-prefixed message: flag 0, 4-byte big-endian length, the bytes. */
export function envelope(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** The gRPC-Web trailer frame of a successful call (flag 0x80), as the gateway sends it. */
export function grpcWebOkTrailer(): Buffer {
  const text = Buffer.from("grpc-status: 0\r\n", "latin1");
  const out = Buffer.alloc(5 + text.length);
  out.writeUInt8(0x80, 0);
  out.writeUInt32BE(text.length, 1);
  out.set(text, 5);
  return out;
}
