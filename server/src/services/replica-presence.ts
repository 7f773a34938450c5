/**
 * A gateway's presence among the gateways sharing its store: it renews its row every `renewMs`
 * and learns how many are alive (renewed within three periods), and holds that share of every rate
 * limit (1 / n), so a client spreading calls over n gateways gets the configured rate in all. A
 * gateway that cannot reach the store keeps its last share.
 */
import type { FastifyBaseLogger } from "fastify";
import type { RateLimiter } from "../auth/rate-limiter.js";
import type { TaskStore } from "../store/task-store.js";

export class ReplicaPresence {
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  /** Gateways alive at the last renewal, this one included. */
  count = 1;

  constructor(
    private readonly store: TaskStore,
    readonly id: string,
    private readonly limiter: RateLimiter,
    private readonly log: FastifyBaseLogger,
    private readonly renewMs: number,
  ) {}

  /** Renews once (so the first calls already get the right share), then every period. */
  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew(), this.renewMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async renew(): Promise<void> {
    try {
      const n = (await this.store.replicaSeen?.(this.id, new Date(Date.now() - 3 * this.renewMs))) ?? 1;
      if (n !== this.count) this.log.info({ gateways: n, replica: this.id }, "gateways sharing the store");
      this.count = n;
      this.limiter.share = 1 / n;
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err }, "presence not renewed; keeping the last rate-limit share");
      this.failing = true;
    }
  }
}
