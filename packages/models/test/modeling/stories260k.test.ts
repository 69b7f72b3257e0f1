/**
 * stories260K (real pretrained Llama, tied embeddings, GQA 8/4): greedy decoding reproduces the
 * README's 40 ids and per-token log-probs match fixtures.json within 1e-4.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tf } from "@prefkit/core";
import { AutoModelForCausalLM, type PreTrainedModelForCausalLM, selectiveLogProbs } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { useBackend } from "./golden.js";

const dir = sharedPath("assets/stories260K");

interface Fixtures {
  greedy: { prompt_ids: number[]; max_new_tokens: number; ids: number[] };
  logprobs: { name: string; ids: number[]; token_logprobs: number[]; sum: number }[];
}

/** Full-recompute argmax decoding (no KV cache). */
function greedy(model: PreTrainedModelForCausalLM, prompt: number[], steps: number): number[] {
  const ids = [...prompt];
  for (let i = 0; i < steps; i++) {
    const next = tf.tidy(() => {
      const { logits } = model.forward({ inputIds: [ids] });
      const last = tf.slice(logits, [0, ids.length - 1, 0], [1, 1, logits.shape[2]]);
      return tf.argMax(tf.reshape(last, [-1])).dataSync()[0]!;
    });
    ids.push(next);
  }
  return ids;
}

describe.skipIf(!dir).each(["wasm", "cpu"])("stories260K on %s", (backend) => {
  let model: PreTrainedModelForCausalLM;
  let fx: Fixtures;
  beforeAll(async () => {
    await useBackend(backend);
    model = await AutoModelForCausalLM.fromPretrained(dir!);
    fx = JSON.parse(readFileSync(join(dir!, "fixtures.json"), "utf8")) as Fixtures;
  });
  afterAll(() => model?.dispose());

  it("loads as a tied Llama with GQA 8/4", () => {
    expect(model.decoderConfig).toMatchObject({ numHeads: 8, numKvHeads: 4, headDim: 8, tieWordEmbeddings: true });
    expect(model.namedParameters().has("lm_head.weight")).toBe(false);
    const params = [...model.namedParameters().values()].reduce((n, v) => n + v.size, 0);
    expect(params).toBe(260_032);
  });

  it("greedy-decodes the known tokens from BOS (all 40 on wasm, the first 8 on the slow cpu backend)", () => {
    const { prompt_ids, max_new_tokens, ids } = fx.greedy;
    const steps = backend === "wasm" ? max_new_tokens : 8;
    expect(greedy(model, prompt_ids, steps)).toEqual(ids.slice(0, prompt_ids.length + steps));
  });

  it("per-token log-probs match fixtures.json within 1e-4", async () => {
    for (const seq of fx.logprobs) {
      const ids = seq.ids;
      const lp = tf.tidy(() => {
        const { logits } = model.forward({ inputIds: [ids.slice(0, -1)] });
        return selectiveLogProbs(logits, [ids.slice(1)]);
      });
      const got = Array.from(await lp.data());
      lp.dispose();
      expect(got).toHaveLength(seq.token_logprobs.length);
      const err = Math.max(...got.map((g, i) => Math.abs(g - seq.token_logprobs[i]!)));
      expect(err, seq.name).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(got.reduce((a, b) => a + b, 0) - seq.sum)).toBeLessThanOrEqual(1e-3);
    }
  });
});
