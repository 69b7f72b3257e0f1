// The browser example, end to end: build the page with Vite, serve it with a model directory,
// drive it in Debian's headless Chromium through playwright-core, and check that DPO trains.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { build } from "vite";
import { afterAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error plain-JS example module, no type declarations
import { startServer } from "./serve.mjs";

const CHROMIUM = process.env["PREFKIT_CHROMIUM"] ?? "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  const msg = `chromium not found at ${CHROMIUM} (apt-get install chromium)`;
  if (process.env["CI"] === "true") throw new Error(`${msg}; CI=true requires it`);
  console.warn(`[skip] ${msg}; the browser test is skipped`);
}
const stories = sharedPath("assets/stories260K");

// Flags Chromium needs on these machines (root, no GPU, closed network).
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

interface RunState {
  done: boolean;
  error?: string;
  backend?: string;
  losses: number[];
  metrics: Array<Record<string, number>>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe("browser example", () => {
  it.skipIf(!hasChromium || !stories)(
    "runs DPO steps on stories260K with the wasm backend in headless Chromium",
    async () => {
      const configFile = fileURLToPath(new URL("./vite.config.ts", import.meta.url));
      await build({ configFile, logLevel: "error" });
      const { server, url } = await startServer({ modelDir: stories! });
      cleanups.push(() => new Promise<void>((ok) => server.close(() => ok())));
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
      cleanups.push(() => browser.close());
      const page = await browser.newPage();
      const consoleErrors: string[] = [];
      page.on("pageerror", (e) => consoleErrors.push(String(e)));
      await page.goto(`${url}?backend=wasm&steps=15`);
      await page.waitForFunction(
        () => (window as unknown as { prefkitRun?: RunState }).prefkitRun?.done === true,
        null,
        {
          timeout: 100_000,
        },
      );
      const run = await page.evaluate(() => (window as unknown as { prefkitRun: RunState }).prefkitRun);
      expect(run.error, run.error).toBeUndefined();
      expect(consoleErrors).toEqual([]);
      expect(run.backend).toBe("wasm");
      expect(run.losses).toHaveLength(15);
      // Step 1: the policy is the reference, so the loss is ln 2 and the margin 0.
      expect(run.losses[0]!).toBeCloseTo(Math.LN2, 5);
      expect(run.metrics[0]!["rewards/margins"]!).toBeCloseTo(0, 5);
      // Then it falls: the last steps are well below ln 2 and the margin is positive.
      const tail = run.losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
      expect(tail).toBeLessThan(Math.LN2 - 0.1);
      expect(run.metrics.at(-1)!["rewards/margins"]!).toBeGreaterThan(0);
      const status = await page.textContent("#status");
      expect(status).toMatch(/^done: loss 0\.693\d → /);
    },
  );
});
