/**
 * AutoModelForSequenceClassification: last-real-token pooling (left / right padding, pad = eos)
 * against PyTorch goldens (scripts/reference/reward_reference.py), head initialisation from a
 * causal-LM checkpoint, the save → load round trip in transformers' layout, and the LoRA seam.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, isSequenceClassifier, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  AutoModelForSequenceClassification,
  type LinearModule,
  loadCheckpointWeights,
  PreTrainedModelForSequenceClassification,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixtureDir = join(here, "fixtures", "tiny-llama-rm");
const stories = sharedPath("assets/stories260K");

interface Case {
  input_ids: number[][];
  attention_mask: number[][];
  last_index: number[];
  scores: number[];
  token_scores: number[][];
}
interface Golden {
  pad_token_id: number;
  rows: number[][];
  cases: { right: Case; left: Case };
  unpadded_scores: number[];
}

let golden: Golden;
let scratch: string;
let model: PreTrainedModelForSequenceClassification;

beforeAll(async () => {
  await tf.setBackend("cpu");
  golden = JSON.parse(await readFile(join(here, "fixtures", "reward-golden.json"), "utf8")) as Golden;
  scratch = await mkdtemp(join(tmpdir(), "prefkit-seqcls-"));
  model = await AutoModelForSequenceClassification.fromPretrained(fixtureDir, { numLabels: 1 });
});
afterAll(async () => {
  model?.dispose();
  await rm(scratch, { recursive: true, force: true });
});

function scoresOf(m: PreTrainedModelForSequenceClassification, ids: number[][], mask?: number[][]): number[] {
  const { logits } = m.forward({ inputIds: ids, ...(mask ? { attentionMask: mask } : {}) });
  expect(logits.shape).toEqual([ids.length, m.numLabels]);
  const out = Array.from(logits.dataSync());
  logits.dispose();
  return out;
}

/** What pad-id pooling would read: the rightmost token that is not the pad id (HF's rule). */
function padIdLastIndex(ids: number[][], pad: number): number[] {
  return ids.map((row) => {
    let last = -1;
    row.forEach((id, t) => {
      if (id !== pad) last = t;
    });
    return last;
  });
}

describe("last-real-token pooling", () => {
  for (const side of ["right", "left"] as const) {
    it(`matches the PyTorch reference with ${side} padding and pad = eos (1e-4)`, () => {
      const c = golden.cases[side];
      const got = scoresOf(model, c.input_ids, c.attention_mask);
      got.forEach((v, i) => {
        expect(v).toBeCloseTo(c.scores[i]!, 4);
        // Padding does not change a row's score (positions come from the mask).
        expect(Math.abs(v - golden.unpadded_scores[i]!)).toBeLessThan(1e-4);
      });
      // Pad-id pooling (HF's rightmost non-pad, or the older first-pad − 1) would read another token in
      // every row: its score differs from the golden.
      const rightmostNonPad = padIdLastIndex(c.input_ids, golden.pad_token_id);
      const firstPadMinusOne = c.input_ids.map((row, i) => {
        const start = c.attention_mask[i]!.indexOf(1);
        const k = row.indexOf(golden.pad_token_id, start);
        return k - 1;
      });
      [...rightmostNonPad.map((t, i) => [t, i]), ...firstPadMinusOne.map((t, i) => [t, i])].forEach(([t, i]) => {
        expect(t).not.toBe(c.last_index[i!]);
        expect(Math.abs(c.token_scores[i!]![t!]! - c.scores[i!]!)).toBeGreaterThan(1e-3);
      });
    });
  }

  it("reads the last column without an attention mask, and per-token scores match the reference", () => {
    const row = golden.rows[0]!;
    expect(scoresOf(model, [row])[0]).toBeCloseTo(golden.unpadded_scores[0]!, 4);
    const c = golden.cases.right;
    const tokens = model.forwardTokens({ inputIds: c.input_ids, attentionMask: c.attention_mask });
    expect(tokens.shape).toEqual([3, c.input_ids[0]!.length, 1]);
    const flat = tokens.dataSync();
    c.attention_mask.forEach((m, i) => {
      m.forEach((on, t) => {
        if (on) expect(flat[i * m.length + t]).toBeCloseTo(c.token_scores[i]![t]!, 4);
      });
    });
    tokens.dispose();
  });

  it("is a SequenceClassifier and frees every tensor of a forward/backward", () => {
    expect(isSequenceClassifier(model)).toBe(true);
    const c = golden.cases.left;
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(
      () => tf.sum(model.forward({ inputIds: c.input_ids, attentionMask: c.attention_mask }).logits) as tf.Scalar,
      model.trainableVariables(),
    );
    expect(Object.keys(grads)).toHaveLength(model.trainableVariables().length);
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("loading and saving", () => {
  it("saves what LlamaForSequenceClassification.save_pretrained writes and reloads to identical logits", async () => {
    const dir = join(scratch, "saved");
    await model.savePretrained(dir);
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    expect(config.architectures).toEqual(["LlamaForSequenceClassification"]);
    expect(config.id2label).toEqual({ "0": "LABEL_0" });
    expect(config.label2id).toEqual({ LABEL_0: 0 });
    expect(config.pad_token_id).toBe(2);
    const names = [...(await loadCheckpointWeights(dir)).tensors.keys()];
    expect(names).toContain("score.weight");
    expect(names.some((n) => n.startsWith("lm_head"))).toBe(false);
    expect(names.every((n) => n === "score.weight" || n.startsWith("model."))).toBe(true);
    const back = await AutoModelForSequenceClassification.fromPretrained(dir);
    expect(back.numLabels).toBe(1);
    const c = golden.cases.right;
    expect(scoresOf(back, c.input_ids, c.attention_mask)).toEqual(scoresOf(model, c.input_ids, c.attention_mask));
    back.dispose();
  });

  it("a causal-LM checkpoint gets a seeded N(0, initializer_range) head and loses lm_head", async () => {
    const lm = AutoModelForCausalLM.fromConfig(
      {
        model_type: "llama",
        vocab_size: 40,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        tie_word_embeddings: false,
        initializer_range: 0.5,
      },
      { seed: 3 },
    );
    const dir = join(scratch, "causal");
    await lm.savePretrained(dir);
    lm.dispose();
    expect([...(await loadCheckpointWeights(dir)).tensors.keys()]).toContain("lm_head.weight");
    const a = await AutoModelForSequenceClassification.fromPretrained(dir, { numLabels: 3, seed: 7 });
    const b = await AutoModelForSequenceClassification.fromPretrained(dir, { numLabels: 3, seed: 7 });
    const c = await AutoModelForSequenceClassification.fromPretrained(dir, { numLabels: 3, seed: 8 });
    const head = (m: PreTrainedModelForSequenceClassification) =>
      Array.from(m.namedParameters().get("score.weight")!.dataSync());
    expect(a.namedParameters().get("score.weight")!.shape).toEqual([3, 16]);
    expect(head(a)).toEqual(head(b));
    expect(head(a)).not.toEqual(head(c));
    const w = head(a);
    const std = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
    expect(std).toBeGreaterThan(0.25);
    expect(std).toBeLessThan(0.8);
    expect([...a.namedParameters().keys()].some((n) => n.startsWith("lm_head"))).toBe(false);
    const saved = join(scratch, "causal-rm");
    await a.savePretrained(saved);
    expect([...(await loadCheckpointWeights(saved)).tensors.keys()]).not.toContain("lm_head.weight");
    expect(JSON.parse(await readFile(join(saved, "config.json"), "utf8")).id2label).toEqual({
      "0": "LABEL_0",
      "1": "LABEL_1",
      "2": "LABEL_2",
    });
    for (const m of [a, b, c]) m.dispose();
  });

  it.skipIf(!stories)("loads stories260K as a reward model (body from the LM, head seeded)", async () => {
    const rm = await AutoModelForSequenceClassification.fromPretrained(stories!, { numLabels: 1, seed: 0 });
    const lm = await AutoModelForCausalLM.fromPretrained(stories!);
    const ids = [[1, 403, 407, 261, 378]];
    const h1 = rm.forwardHidden({ inputIds: ids });
    const h2 = lm.forwardHidden({ inputIds: ids });
    expect(tf.max(tf.abs(tf.sub(h1, h2))).dataSync()[0]).toBeLessThan(1e-6);
    // The head is the last hidden state times score.weight.
    const score = rm.namedParameters().get("score.weight")!;
    const expected = tf.sum(tf.mul(tf.slice(h1, [0, 4, 0], [1, 1, 64]).reshape([64]), score.reshape([64])));
    expect(scoresOf(rm, ids)[0]).toBeCloseTo(expected.dataSync()[0]!, 5);
    tf.dispose([h1, h2, expected]);
    const fromLm = PreTrainedModelForSequenceClassification.fromCausalLM(lm, { numLabels: 1, seed: 0 });
    expect(scoresOf(fromLm, ids)).toEqual(scoresOf(rm, ids));
    const copy = rm.copy({ trainable: false });
    expect(copy.trainableVariables()).toHaveLength(0);
    expect(scoresOf(copy, ids)).toEqual(scoresOf(rm, ids));
    for (const m of [rm, lm, fromLm, copy]) m.dispose();
  });

  it("rejects a score.weight that does not fit numLabels, naming the tensor", async () => {
    await expect(AutoModelForSequenceClassification.fromPretrained(fixtureDir, { numLabels: 2 })).rejects.toThrow(
      /score\.weight/,
    );
    await expect(
      AutoModelForSequenceClassification.fromPretrained(fixtureDir, { numLabels: 2 }),
    ).rejects.toBeInstanceOf(ConfigError);
  });
});

describe("LoRA seam", () => {
  it("exposes score and the body projections (no lm_head); a wrapper on score changes the output", () => {
    const m = AutoModelForSequenceClassification.fromConfig(
      {
        model_type: "llama",
        vocab_size: 20,
        hidden_size: 8,
        intermediate_size: 12,
        num_hidden_layers: 1,
        num_attention_heads: 2,
      },
      { numLabels: 1, seed: 1 },
    );
    const names = [...m.linearModules().keys()];
    expect(names).toContain("score");
    expect(names).toContain("model.layers.0.self_attn.q_proj");
    expect(names).not.toContain("lm_head");
    expect(() => m.replaceLinear("lm_head", (x) => x)).toThrow(ConfigError);
    const ids = [[3, 4, 5]];
    const before = scoresOf(m, ids)[0]!;
    const extra = tf.variable(tf.scalar(10));
    m.replaceLinear(
      "score",
      (base): LinearModule => ({
        name: base.name,
        inFeatures: base.inFeatures,
        outFeatures: base.outFeatures,
        apply: (x) => tf.add(base.apply(x), extra),
        parameters: () => new Map([...base.parameters(), ["score.extra", extra]]),
      }),
    );
    expect(scoresOf(m, ids)[0]).toBeCloseTo(before + 10, 4);
    expect(m.namedParameters().get("score.extra")).toBe(extra);
    extra.dispose();
    m.dispose();
  });
});
