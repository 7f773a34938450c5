/**
 * Serves the dashboard (the Vite build in web/dist) at `/`, with its assets. The asset files carry
 * a content hash in their names, so they may be cached for a year; index.html must never be, so a
 * new build reaches browsers at once. Without a build, `/` says how to make one.
 */
import { existsSync } from "node:fs";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";
import { inInstallDir } from "../install-dir.js";

/** Where the built dashboard lives. */
export const dashboardDir = inInstallDir("web", "dist");

/** Registers `/` and `/assets/*`. */
export async function registerDashboardRoutes(app: FastifyInstance, dir = dashboardDir): Promise<void> {
  if (!existsSync(`${dir}/index.html`)) {
    app.get("/", async (_req, reply) =>
      reply
        .code(503)
        .type("text/plain; charset=utf-8")
        .send(
          "The dashboard is not built. Run `npm run build:web` (npm start does it for you), then reload.\n",
        ),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: dir,
    wildcard: false,
    index: false,
    setHeaders(res, path) {
      res.setHeader(
        "cache-control",
        path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      );
    },
  });
  app.get("/", (_req, reply) => reply.sendFile("index.html"));
}
