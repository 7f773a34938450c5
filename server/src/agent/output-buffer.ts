/**
 * A task's output as the agent sends it: lines grouped into numbered chunks (per task, from 1), kept
 * until the gateway acknowledges them, so a reconnect resends exactly what may have been lost and the
 * gateway drops what it already has.
 */

/** One chunk of output lines from one stream. */
export interface OutputChunk {
  readonly seq: number;
  readonly stream: "stdout" | "stderr";
  readonly text: string;
}

/** Most bytes of pending lines before a chunk is cut early. */
const chunkBytes = 32 * 1024;

/** Numbered, acknowledged output of one task. */
export class OutputBuffer {
  private nextSeq = 1;
  private readonly unacked = new Map<number, OutputChunk>();
  private pending: { stream: "stdout" | "stderr"; lines: string[]; bytes: number } | undefined;

  /** Adds a line; returns chunks that are ready to send (when a chunk filled or the stream changed). */
  add(stream: "stdout" | "stderr", line: string): OutputChunk[] {
    const out: OutputChunk[] = [];
    if (this.pending && this.pending.stream !== stream) out.push(...this.flush());
    this.pending ??= { stream, lines: [], bytes: 0 };
    this.pending.lines.push(line);
    this.pending.bytes += line.length + 1;
    if (this.pending.bytes >= chunkBytes) out.push(...this.flush());
    return out;
  }

  /** Cuts the pending lines into a chunk. */
  flush(): OutputChunk[] {
    const p = this.pending;
    this.pending = undefined;
    if (!p || p.lines.length === 0) return [];
    const chunk: OutputChunk = { seq: this.nextSeq++, stream: p.stream, text: p.lines.join("\n") };
    this.unacked.set(chunk.seq, chunk);
    return [chunk];
  }

  /** The gateway has chunk `seq` (and, as chunks are stored in order, every one before it). */
  ack(seq: number): void {
    for (const s of this.unacked.keys()) if (s <= seq) this.unacked.delete(s);
  }

  /** Chunks sent but not acknowledged, oldest first (to resend after a reconnect). */
  pendingChunks(): OutputChunk[] {
    return [...this.unacked.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Whether every chunk was acknowledged and nothing waits to be cut. */
  get drained(): boolean {
    return this.unacked.size === 0 && !this.pending;
  }
}
