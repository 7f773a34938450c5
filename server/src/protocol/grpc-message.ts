/**
 * Percent-encodes a grpc-message value as the gRPC spec asks: only bytes outside printable ASCII
 * (0x20-0x7E) and '%' itself. Over-encoding (as encodeURIComponent does) shows up verbatim in
 * clients that decode with decodeURI, such as @grpc/grpc-js ("shutting down%3B ...").
 */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * A grpc-message as Connect writes it (encodeURIComponent), re-encoded the spec's way; a value that
 * is not valid percent-encoding is returned as it was.
 */
export function reencodeConnectGrpcMessage(value: string): string {
  try {
    return encodeGrpcMessage(decodeURIComponent(value));
  } catch {
    return value;
  }
}
