/**
 * Incremental decoding over the KV cache gives the full forward's logits (1e-4) for every
 * family flag: GQA, llama3 rope scaling, qwen2 q/k/v bias, qwen3 qk-norm with independent
 * head_dim, a mistral sliding window shorter than the sequence, tied embeddings; with left
 * padding and with multi-token chunks after the prefill.
 */
import { tf } from "@prefkit/core";
import type { KVCache, PreTrainedModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useBackend } from "../modeling/golden.js";
import { FAMILIES, randomIds, randomModel } from "./helpers.js";

const T = 10;
const PADS = [0, 3, 6]; // left padding per row

/** HF's position ids for left padding: cumsum(mask) − 1, 1 at padding. */
function positionsFor(mask: number[][]): number[][] {
  return mask.map((row) => {
    let seen = 0;
    return row.map((m) => (m ? seen++ : 1));
  });
}

/** Run `ids` through the cache in chunks of the given sizes; return logits [B, T, V] as nested arrays. */
async function incrementalLogits(
  model: PreTrainedModelForCausalLM,
  ids: number[][],
  mask: number[][],
  chunks: number[],
): Promise<number[][][]> {
  const positions = positionsFor(mask);
  const pieces: number[][][][] = [];
  let cache: KVCache | null = null;
  let start = 0;
  for (const size of chunks) {
    const end = start + size;
    const out = model.forwardWithCache({
      inputIds: ids.map((r) => r.slice(start, end)),
      attentionMask: mask.map((r) => r.slice(0, end)),
      positionIds: positions.map((r) => r.slice(start, end)),
      pastKeyValues: cache,
    });
    cache?.dispose();
    cache = out.pastKeyValues;
    expect(cache.length).toBe(end);
    pieces.push((await out.logits.array()) as number[][][]);
    out.logits.dispose();
    start = end;
  }
  (cache as KVCache | null)?.dispose();
  expect(start).toBe(ids[0]!.length);
  return ids.map((_, b) => pieces.flatMap((p) => p[b]!));
}

describe.each(["wasm", "cpu"])("KV cache on %s", (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  const families = backend === "cpu" ? ["llama_gqa", "mistral_window3"] : Object.keys(FAMILIES);
  describe.each(families)("%s", (family) => {
    let model: PreTrainedModelForCausalLM;
    beforeAll(() => {
      model = randomModel(FAMILIES[family]!, 7);
    });
    afterAll(() => model?.dispose());

    it("prefill + one token at a time (and in chunks) equals the full forward to 1e-4, left-padded", async () => {
      const vocab = model.decoderConfig.vocabSize;
      const ids = randomIds(PADS.length, T, vocab, 11);
      const mask = PADS.map((p) => Array.from({ length: T }, (_, t) => (t < p ? 0 : 1)));
      for (const [b, p] of PADS.entries()) for (let t = 0; t < p; t++) ids[b]![t] = 0;
      const full = tf.tidy(
        () => model.forward({ inputIds: ids, attentionMask: mask, positionIds: positionsFor(mask) }).logits,
      );
      const expected = (await full.array()) as number[][][];
      full.dispose();

      for (const chunks of [
        [7, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        [4, 3, 2, 1],
      ]) {
        const got = await incrementalLogits(model, ids, mask, chunks);
        let worst = 0;
        let scale = 0;
        for (const [b, p] of PADS.entries()) {
          for (let t = p; t < T; t++) {
            for (let v = 0; v < vocab; v++) {
              worst = Math.max(worst, Math.abs(got[b]![t]![v]! - expected[b]![t]![v]!));
              scale = Math.max(scale, Math.abs(expected[b]![t]![v]!));
            }
          }
        }
        expect(scale, "logits are not trivially small").toBeGreaterThan(1);
        expect(worst, `chunks ${chunks}`).toBeLessThanOrEqual(1e-4);
      }
    });
  });

  it("a sliding window shorter than the sequence changes the logits (the test above is not vacuous)", async () => {
    const windowed = randomModel(FAMILIES.mistral_window3!, 3);
    const full = randomModel({ ...FAMILIES.mistral_window3!, sliding_window: null }, 3);
    const ids = randomIds(1, T, 61, 5);
    const diff = tf.tidy(() =>
      tf.max(tf.abs(tf.sub(windowed.forward({ inputIds: ids }).logits, full.forward({ inputIds: ids }).logits))),
    );
    expect((await diff.data())[0]).toBeGreaterThan(1e-2);
    diff.dispose();
    windowed.dispose();
    full.dispose();
  });

  it("lastPositionOnly returns the last position's logits and a cache of the whole prompt", async () => {
    const model = randomModel(FAMILIES.llama_gqa!, 1);
    const ids = randomIds(2, 5, 61, 2);
    const before = tf.memory().numTensors;
    const out = model.forwardWithCache({ inputIds: ids, positionIds: [[0, 1, 2, 3, 4]], lastPositionOnly: true });
    expect(out.logits.shape).toEqual([2, 1, 61]);
    expect(out.pastKeyValues.length).toBe(5);
    expect(out.pastKeyValues.batchSize).toBe(2);
    const err = tf.tidy(() => {
      const last = tf.slice(model.forward({ inputIds: ids }).logits, [0, 4, 0], [2, 1, 61]);
      return tf.max(tf.abs(tf.sub(last, out.logits)));
    });
    expect((await err.data())[0]).toBeLessThanOrEqual(1e-5);
    tf.dispose([err, out.logits]);
    out.pastKeyValues.dispose();
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it("rejects a mask that does not cover cache + new tokens", () => {
    const model = randomModel(FAMILIES.llama_gqa!, 1);
    const out = model.forwardWithCache({ inputIds: [[3, 4]], positionIds: [[0, 1]] });
    expect(() =>
      model.forwardWithCache({
        inputIds: [[5]],
        attentionMask: [[1, 1]],
        positionIds: [[2]],
        pastKeyValues: out.pastKeyValues,
      }),
    ).toThrow(/attentionMask.*\[1,3\]|\[1,3\].*attentionMask/s);
    out.logits.dispose();
    out.pastKeyValues.dispose();
    model.dispose();
  });
});
