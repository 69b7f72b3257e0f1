/**
 * Parity with transformers on every golden fixture (shared hf-golden: real transformers 4.52.4;
 * local: the op-for-op reference). Logits and hidden states ≤ 1e-4 on real positions, summed
 * completion log-probs ≤ 1e-3.
 */
import { tf } from "@prefkit/core";
import { AutoModelForCausalLM, type PreTrainedModelForCausalLM, sequenceLogProbs } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, type Golden, goldenFixtures, maskedMaxAbsDiff, readGolden, useBackend } from "./golden.js";

const fixtures = goldenFixtures();
const report: string[] = [];

describe.each(["cpu", "wasm", "wasm+prefkit"])("golden parity on %s", (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });
  afterAll(() => {
    if (process.env.PREFKIT_PARITY_REPORT) console.log(report.join("\n"));
  });

  it("finds fixtures", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(2);
  });

  describe.each(fixtures)("$name", ({ name, dir }) => {
    let model: PreTrainedModelForCausalLM;
    let golden: Golden;
    beforeAll(async () => {
      await useBackend(backend);
      model = await AutoModelForCausalLM.fromPretrained(dir);
      golden = readGolden(dir);
    });
    afterAll(() => model?.dispose());

    it("logits and hidden states match within 1e-4 on real positions", async () => {
      const { logits, hiddenStates } = model.forward(
        { inputIds: golden.input_ids, attentionMask: golden.attention_mask, positionIds: golden.position_ids },
        { outputHiddenStates: true },
      );
      expect(logits.shape).toEqual(golden.logits.shape);
      const v = logits.shape[2];
      const logitErr = maskedMaxAbsDiff(await logits.data(), decode(golden.logits), golden.logits_compare_mask, v);
      let hiddenErr = 0;
      expect(hiddenStates).toHaveLength(golden.hidden_states.length);
      for (const [i, h] of hiddenStates!.entries()) {
        const ref = golden.hidden_states[i]!;
        expect(h.shape).toEqual(ref.shape);
        const e = maskedMaxAbsDiff(await h.data(), decode(ref), golden.attention_mask, h.shape[2]);
        hiddenErr = Math.max(hiddenErr, e);
      }
      report.push(`${backend} ${name}: logits ${logitErr.toExponential(2)} hidden ${hiddenErr.toExponential(2)}`);
      tf.dispose([logits, ...hiddenStates!]);
      expect(logitErr).toBeLessThanOrEqual(1e-4);
      expect(hiddenErr).toBeLessThanOrEqual(1e-4);
    });

    it("summed completion log-probs match dpo_logps within 1e-3", async () => {
      const ref = golden.dpo_logps;
      const out = sequenceLogProbs(model, golden.input_ids, ref.loss_mask, { attentionMask: golden.attention_mask });
      const sums = Array.from(await out.sums.data());
      const counts = Array.from(await out.counts.data());
      const means = Array.from(await out.means.data());
      const perToken = (await out.perToken.array()) as number[][];
      tf.dispose([out.sums, out.counts, out.means, out.perToken]);
      expect(counts).toEqual(ref.n_tokens);
      const sumErr = Math.max(...sums.map((s, i) => Math.abs(s - ref.logps_sum[i]!)));
      report.push(`${backend} ${name}: logps_sum ${sumErr.toExponential(2)}`);
      expect(sumErr).toBeLessThanOrEqual(1e-3);
      let meanErr = 0;
      let tokenErr = 0;
      for (const [i, m] of means.entries()) meanErr = Math.max(meanErr, Math.abs(m - ref.logps_mean[i]!));
      for (const [b, row] of perToken.entries()) {
        for (const [t, lp] of row.entries()) tokenErr = Math.max(tokenErr, Math.abs(lp - ref.per_token_logps[b]![t]!));
      }
      expect(meanErr).toBeLessThanOrEqual(1e-3);
      expect(tokenErr).toBeLessThanOrEqual(1e-4);
    });
  });
});
