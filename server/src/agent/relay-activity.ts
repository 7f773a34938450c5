/**
 * What the agent's relay is still passing on, per task: open core streams that carried the task's
 * messages, calls for it in flight, and streams whose first message is not handled yet (their task
 * is not known). The agent waits for a task to be quiet before it reports its process's exit code,
 * so an end the core sent just before it exited (read ahead by the relay, not answered by the
 * gateway yet) reaches the gateway first and the core's own end stands.
 */
export class RelayActivity {
  private readonly busy = new Map<string, number>();
  private unknown = 0;
  private readonly waiters = new Set<() => void>();

  /** A stream or call starts carrying `taskId`'s messages. */
  enter(taskId: string): void {
    this.busy.set(taskId, (this.busy.get(taskId) ?? 0) + 1);
  }

  /** It is over: everything it carried for `taskId` was answered (or refused). */
  leave(taskId: string): void {
    const n = (this.busy.get(taskId) ?? 0) - 1;
    if (n > 0) this.busy.set(taskId, n);
    else this.busy.delete(taskId);
    this.changed();
  }

  /** A stream opened; its task is known once its first message is handled. */
  opened(): void {
    this.unknown++;
  }

  /** That stream's first message was handled, or it ended without one. */
  identified(): void {
    this.unknown--;
    this.changed();
  }

  /** Resolves once nothing may still carry `taskId`'s messages, or after `timeoutMs`; true when quiet. */
  quiet(taskId: string, timeoutMs: number): Promise<boolean> {
    const isQuiet = () => this.unknown === 0 && !this.busy.has(taskId);
    if (isQuiet()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!isQuiet()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  private changed(): void {
    for (const w of [...this.waiters]) w();
  }
}
