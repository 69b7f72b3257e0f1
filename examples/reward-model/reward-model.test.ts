import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine } from "@prefkit/core";
import { describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error: a plain .mjs example without type declarations
import { main } from "./train.mjs";

const data = sharedPath("assets/human-like-dpo");
const model = sharedPath("assets/stories260K");

/** The 12-step, 40-character run both tests use, in a temporary output directory; its result and log lines. */
async function shortRun(options: { bf16?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "prefkit-rm-example-"));
  const lines: string[] = [];
  try {
    const out = await main({
      steps: 12,
      chars: 40,
      maxLength: 80,
      ...options,
      outputDir: dir,
      log: (l: string) => lines.push(l),
    });
    return { out, lines };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("examples/reward-model", () => {
  it.skipIf(!data || !model)("a short run beats chance on the held-out 20% of Human-Like-DPO", async () => {
    await initEngine({ backend: "wasm", threads: 1 }); // cpu is ~30x slower on these matmuls
    const { out, lines } = await shortRun();
    expect(out.evalPairs).toBeGreaterThan(150); // ~195 held out, a few over maxLength dropped
    expect(out.droppedRows.eval).toBe(195 - out.evalPairs);
    expect(out.after.eval_accuracy).toBeGreaterThan(0.75);
    expect(out.after.eval_loss).toBeLessThan(out.before.eval_loss);
    expect(lines.join("\n")).toMatch(/after 12 steps: eval_accuracy=/);
  });

  it.skipIf(!data || !model)(
    "--bf16: weights loaded as bfloat16 and bf16 products still learn the preference",
    async () => {
      // The engine the test run started: wasm on the portable pass (bf16-rounded weights, float32 ops), cpu with
      // the native addon on the fast-path pass (the fused decoder's bf16 GEMM, fp32 sums).
      await initEngine();
      const { out, lines } = await shortRun({ bf16: true });
      expect(out.after.eval_accuracy).toBeGreaterThan(0.75);
      expect(out.after.eval_loss).toBeLessThan(out.before.eval_loss);
      expect(lines.join("\n")).toMatch(/after 12 steps: eval_accuracy=/);
    },
  );
});
