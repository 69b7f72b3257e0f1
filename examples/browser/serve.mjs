#!/usr/bin/env node
/**
 * A small static server for the browser example: the built page (`dist/`), the model directory
 * under `/model/`, and tfjs-backend-wasm's `.wasm` binaries under `/wasm/`.
 *
 *   npm run browser-demo -- --model ../shared/assets/stories260K      then open the printed URL
 */
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".css": "text/css",
  ".svg": "image/svg+xml",
};

function inside(root, urlPath) {
  const file = normalize(join(root, decodeURIComponent(urlPath)));
  return file === root || file.startsWith(root + sep) ? file : undefined;
}

/**
 * Serve the example. Resolves with the server and its base URL once it listens.
 * @param {{ modelDir: string, distDir?: string, port?: number }} opts
 */
export function startServer({ modelDir, distDir = join(here, "dist"), port = 0 }) {
  const wasmDir = join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist");
  const mounts = [
    ["/model/", resolve(modelDir)],
    ["/wasm/", wasmDir],
    ["/", resolve(distDir)],
  ];
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const [prefix, root] = mounts.find(([p]) => path.startsWith(p));
    let file = inside(root, path.slice(prefix.length) || "index.html");
    if (file && existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!file || !existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => ok({ server, url: `http://127.0.0.1:${server.address().port}/` }));
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: { model: { type: "string" }, port: { type: "string", default: "5174" } },
  });
  const modelDir = values.model ?? join(here, "..", "..", "..", "shared", "assets", "stories260K");
  if (!existsSync(join(modelDir, "config.json"))) {
    console.error(`no config.json in ${modelDir}: pass --model DIR (a HF model directory)`);
    process.exit(2);
  }
  if (!existsSync(join(here, "dist", "index.html"))) {
    console.error("examples/browser/dist is missing: run `npm run browser-demo` (it builds first)");
    process.exit(2);
  }
  const { url } = await startServer({ modelDir, port: Number(values.port) });
  console.log(`prefkit browser example: open ${url} (model ${modelDir}); Ctrl-C stops`);
}
