// The console is built into plain static files (hashed names under assets/) that `slipway server`
// serves at /. Everything is bundled: no CDN, no web fonts, so it works with no internet access.
// SLIPWAY_CONSOLE_OUT: where to write them (CMake passes ${CMAKE_BINARY_DIR}/console).
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

export default defineConfig({
  plugins: [preact()],
  base: "./",
  build: {
    outDir: process.env.SLIPWAY_CONSOLE_OUT || "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev`: the API of a server on 127.0.0.1:7700 (SLIPWAY_SERVER to change it).
    proxy: {
      "/api": { target: process.env.SLIPWAY_SERVER || "http://127.0.0.1:7700", ws: true },
    },
  },
});
