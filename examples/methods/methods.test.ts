import { initEngine } from "@prefkit/core";
import { describe, expect, it } from "vitest";
import { sharedPath } from "../../test/helpers/shared.js";
// @ts-expect-error: a plain .mjs example without type declarations
import { main } from "./train.mjs";

const assets = sharedPath("assets/stories260K") && sharedPath("assets/human-like-dpo");

describe("examples/methods", () => {
  it.skipIf(!assets)(
    "KTO, ORPO and CPO/SimPO on stories260K + Human-Like-DPO: the loss falls and the held-out preference is learned",
    async () => {
      await initEngine({ backend: "wasm", threads: 1 });
      const lines: string[] = [];
      const r = await main({ methods: ["kto", "orpo", "cpo"], steps: 24, log: (l: string) => lines.push(l) });
      for (const m of ["kto", "orpo", "cpo"]) expect(r[m].evalLossAfter).toBeLessThan(r[m].evalLossBefore);
      // ORPO and CPO start from the pretrained model's own preference (about chance) and must beat it clearly.
      expect(r.orpo.after).toBeGreaterThan(r.orpo.before + 0.25);
      expect(r.cpo.after).toBeGreaterThan(r.cpo.before + 0.25);
      // KTO's rewards start at 0 (policy = reference); the desirable rows' must end well above the undesirable ones'.
      expect(r.kto.before).toBe(0);
      expect(r.kto.after).toBeGreaterThan(1);
      expect(lines.join("\n")).toMatch(/orpo: held-out loss .* held-out reward accuracy/);
    },
  );
});
