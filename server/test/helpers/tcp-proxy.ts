/**
 * A TCP proxy on a free port in front of a gateway, to simulate network trouble between a daemon and
 * the gateway:
 *
 * - `cut()` destroys every open connection at once (both sides see the connection drop);
 * - `block()` / `unblock()` make the proxy refuse new connections (accepted and reset at once)
 *   while blocked, so a reconnecting client stays cut off until the test lets it through;
 * - `hold("up")` stops forwarding client -> server bytes (a daemon's reports are held up while the
 *   gateway still reaches it), `hold("down")` server -> client bytes (the gateway's answers are held
 *   up), on open and new connections alike; the bytes are buffered, and `release()` forwards them
 *   and carries on.
 */
import { createServer, type Server, Socket } from "node:net";

/** A direction of traffic: client -> server ("up") or server -> client ("down"). */
export type Direction = "up" | "down";

/** A running proxy. */
export interface TcpProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Connections accepted and forwarded so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Destroys every open connection. */
  cut(): void;
  /** Refuses new connections until `unblock()`. */
  block(): void;
  unblock(): void;
  /** Stops forwarding one direction (bytes are buffered) until `release()`. */
  hold(direction?: Direction): void;
  /** Forwards what was held, in both directions, and stops holding. */
  release(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

interface Pair {
  readonly client: Socket;
  readonly server: Socket;
  readonly held: Record<Direction, Buffer[]>;
}

/** Drops a connection with a TCP reset, as a broken network path would look to the peer. */
function reset(socket: Socket): void {
  socket.on("error", () => {});
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** Starts a proxy on 127.0.0.1 (free port) forwarding to `targetHost:targetPort`. */
export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  const holding: Record<Direction, boolean> = { up: false, down: false };
  let blocked = false;
  let accepted = 0;

  const server: Server = createServer((client) => {
    if (blocked) {
      reset(client);
      return;
    }
    accepted++;
    const upstream = new Socket();
    const pair: Pair = { client, server: upstream, held: { up: [], down: [] } };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("error", drop);
      s.on("close", drop);
    }
    client.on("data", (d: Buffer) => {
      if (holding.up) pair.held.up.push(d);
      else upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (holding.down) pair.held.down.push(d);
      else client.write(d);
    });
    upstream.connect(targetPort, targetHost);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;

  const cut = () => {
    for (const p of [...pairs]) {
      pairs.delete(p);
      reset(p.client);
      reset(p.server);
    }
  };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    cut,
    block: () => {
      blocked = true;
    },
    unblock: () => {
      blocked = false;
    },
    hold: (direction = "up") => {
      holding[direction] = true;
    },
    release: () => {
      holding.up = false;
      holding.down = false;
      for (const p of pairs) {
        for (const d of p.held.up.splice(0)) p.server.write(d);
        for (const d of p.held.down.splice(0)) p.client.write(d);
      }
    },
    close: async () => {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
