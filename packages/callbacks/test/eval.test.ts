import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  type PreTrainedModelForCausalLM,
  type PreTrainedTokenizer,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../test/helpers/shared.js";
import { evaluatePreferences, generate, logProbHistogram } from "../src/index.js";
import { isPng } from "./helpers.js";

const modelDir = sharedPath("assets/stories260K");

interface Fixtures {
  greedy: { ids: number[]; text: string };
  logprobs: Array<{ name: string; ids: number[]; token_logprobs: number[] }>;
}

describe.skipIf(!modelDir)("evaluation helpers on stories260K", () => {
  let model: PreTrainedModelForCausalLM;
  let tok: PreTrainedTokenizer;
  let fixtures: Fixtures;
  let dir = "";
  beforeAll(async () => {
    await initEngine({ backend: "wasm", threads: 1 });
    model = await AutoModelForCausalLM.fromPretrained(modelDir!);
    tok = await AutoTokenizer.fromPretrained(modelDir!);
    fixtures = JSON.parse(await readFile(join(modelDir!, "fixtures.json"), "utf8"));
    dir = await mkdtemp(join(tmpdir(), "pk-eval-"));
  });
  afterAll(async () => {
    model?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("greedy generate reproduces the 40 reference tokens", async () => {
    const before = tf.memory().numTensors;
    const [g] = await generate(model, tok, [""], { maxNewTokens: 40 });
    expect(g!.promptIds).toEqual([1]);
    expect([1, ...g!.completionIds]).toEqual(fixtures.greedy.ids);
    expect(g!.completion).toBe(fixtures.greedy.text);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("logProbHistogram's per-text means equal the reference token log-probs, and writes a PNG", async () => {
    const before = tf.memory().numTensors;
    const ref = fixtures.logprobs[0]!;
    const text = tok.decode(ref.ids, { skipSpecialTokens: true });
    expect(tok.encode(text)).toEqual(ref.ids);
    const expected = ref.token_logprobs.reduce((a, b) => a + b, 0) / ref.token_logprobs.length;
    const r = await logProbHistogram(
      model,
      tok,
      [
        { name: "story", texts: [text, "Tom had a red ball."] },
        { name: "other", texts: ["The quarterly report shows revenue growth.", "x"] },
      ],
      { outDir: dir, batchSize: 2 },
    );
    expect(r.datasets[0]!.values[0]).toBeCloseTo(expected, 4);
    expect(r.datasets[1]!.values).toHaveLength(2); // "x" is BOS + 1 token: still scorable
    expect(r.means["story"]).toBeGreaterThan(r.means["other"]!);
    expect(isPng(new Uint8Array(await readFile(r.png!)))).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("evaluatePreferences: a model against itself has every margin 0; against a perturbed reference it matches hand-computed rewards", async () => {
    const before = tf.memory().numTensors;
    const rows = [
      { prompt: "Once upon a time", chosen: " there was a girl.", rejected: " the the the." },
      { prompt: "Tom saw", chosen: " a dog.", rejected: " a car dog was." },
      { prompt: "Lily liked", chosen: " to play.", rejected: " play to to." },
    ];
    const same = await evaluatePreferences(model, model, rows, { tokenizer: tok });
    expect(same.margins).toEqual([0, 0, 0]);
    expect(same.accuracy).toBe(0);
    expect(same.numPairs).toBe(3);
    // Policy = reference: every margin is 0, so the sigmoid loss is ln 2.
    expect(same.metrics["loss"]).toBeCloseTo(Math.LN2, 6);

    // A reference that is the policy with a scaled LM head: compute rewards by hand (sum of token log-probs).
    const ref = model.frozenCopy();
    // Tokenised pairs, so the check is about the rewards, not about how text is split.
    const pairs = rows.map((row) => {
      const promptIds = tok.encode(row.prompt);
      return {
        promptIds,
        chosenIds: tok.encode(row.prompt + row.chosen).slice(promptIds.length),
        rejectedIds: tok.encode(row.prompt + row.rejected).slice(promptIds.length),
      };
    });
    const handLogp = (net: PreTrainedModelForCausalLM, p: number[], completion: number[]) => {
      const ids = [...p, ...completion];
      const lp = tf.tidy(() => tf.logSoftmax(net.forward({ inputIds: [ids] }).logits).arraySync()[0] as number[][]);
      let s = 0;
      for (let t = p.length; t < ids.length; t++) s += lp[t - 1]![ids[t]!]!;
      return s;
    };
    const emb = [...ref.namedParameters().entries()].find(([k]) => k.includes("norm") && !k.includes("layers"))!;
    tf.tidy(() => emb[1].assign(tf.mul(emb[1], 1.5)));
    const r = await evaluatePreferences(model, ref, pairs, { tokenizer: tok, beta: 0.5, batchSize: 2 });
    const expected = pairs.map(
      (row) =>
        0.5 * (handLogp(model, row.promptIds, row.chosenIds) - handLogp(ref, row.promptIds, row.chosenIds)) -
        0.5 * (handLogp(model, row.promptIds, row.rejectedIds) - handLogp(ref, row.promptIds, row.rejectedIds)),
    );
    r.margins.forEach((m, i) => {
      expect(m).toBeCloseTo(expected[i]!, 3);
    });
    expect(r.accuracy).toBe(expected.filter((m) => m > 0).length / 3);
    expect(r.metrics["rewards/margins"]).toBeCloseTo(expected.reduce((a, b) => a + b, 0) / 3, 4);
    const sigmoidLoss = expected.reduce((a, m) => a - Math.log(1 / (1 + Math.exp(-m))), 0) / 3;
    expect(r.metrics["loss"]).toBeCloseTo(sigmoidLoss, 4);
    ref.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
