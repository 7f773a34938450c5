/**
 * Builds the dashboard into web/dist, which the gateway serves at `/`. The generated message types
 * come from ../gen, shared with the server.
 */
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    fs: { allow: [".."] },
  },
});
