/**
 * Issue 15 item 1 on the fast path (cpu + native-blas): the fused native decoder does not take 16-bit
 * weights yet (issue 15 item 2), so for a model loaded as bf16 it declines and the decoder's tfjs ops run.
 * This checks that fall-back for every family layout: completion log-probs and the LoRA adapters'
 * gradients, with left and right padding, equal the float32 model's (the same bf16 values, loaded as
 * float32, on the native fused decoder) to float32 noise.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, Rng, shutdownEngine, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  getPeftModel,
  type PeftModelForCausalLM,
  type PreTrainedModelForCausalLM,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FAMILIES, randomModel } from "../generation/helpers.js";
import { skipWithoutNativeDecoder } from "./native-helpers.js";

const SKIP = skipWithoutNativeDecoder("16-bit fall-back on the native path");

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-load16-native-"));
});
afterAll(async () => {
  shutdownEngine();
  await rm(root, { recursive: true, force: true });
});

const B = 3;
const T = 9;
function batch(vocab: number) {
  const rng = new Rng(11);
  const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => 3 + rng.int(vocab - 3)));
  // Row 1 right-padded, row 2 left-padded (positions from its first real token).
  const mask = [
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 0, 0, 0],
    [0, 0, 1, 1, 1, 1, 1, 1, 1],
  ];
  const positions = mask.map((row) => {
    let p = -1;
    return row.map((m) => (m ? ++p : 0));
  });
  const completion = mask.map((row) => row.map((m, t) => (m && t >= 4 ? 1 : 0)));
  return { ids, mask, positions, completion };
}

/** Σ weight·(summed completion log-prob) and its gradients with respect to the LoRA variables. */
function valueAndGrads(peft: PeftModelForCausalLM, base: PreTrainedModelForCausalLM, data: ReturnType<typeof batch>) {
  const vars = peft.trainableVariables();
  const weights = tf.tensor1d([1, -2, 3]);
  const { value, grads } = tf.variableGrads(() => {
    const lp = base.completionLogProbs(data.ids, data.completion, {
      attentionMask: data.mask,
      positionIds: data.positions,
    });
    return tf.sum(tf.mul(lp.sums, weights)) as tf.Scalar;
  }, vars);
  const out = {
    value: value.dataSync()[0]!,
    grads: vars.map((v) => grads[v.name]!.dataSync().slice() as Float32Array),
  };
  tf.dispose([value, weights, ...Object.values(grads)]);
  return out;
}

describe.skipIf(SKIP)("16-bit weights on the fast path", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  it.each(Object.entries(FAMILIES))(
    "%s: the native decoder declines bf16 weights; the tfjs fall-back equals the float32 native run",
    async (name, config) => {
      const dir = join(root, name);
      const source = randomModel(config, 5);
      await source.savePretrained(dir, { dtype: "BF16" });
      source.dispose();
      const data = batch(Number(config["vocab_size"]));
      const lora = { r: 4, loraAlpha: 8, targetModules: "all-linear" as const };
      const runs = [];
      for (const dtype of ["bfloat16", "float32"] as const) {
        const base = await AutoModelForCausalLM.fromPretrained(dir, { dtype });
        const peft = getPeftModel(base, lora, { seed: 2 }) as unknown as PeftModelForCausalLM;
        // B starts at zero (PEFT's init): make the update non-zero so that the adapters matter.
        for (const [n, v] of peft.namedParameters()) {
          if (n.includes("lora_B")) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.2, "float32", 7)));
        }
        const labels = tf.tensor2d(
          data.ids.map((r) => [...r.slice(1), 0]),
          [B, T],
          "int32",
        );
        const direct = base.directTokenLogProbs({ inputIds: data.ids }, labels, {});
        expect(direct === undefined, `${dtype}: native path declines`).toBe(dtype === "bfloat16");
        if (direct !== undefined) tf.dispose([direct.logProbs]);
        labels.dispose();
        runs.push({ dtype, base, peft, ...valueAndGrads(peft, base, data) });
      }
      const [half, full] = runs;
      expect(Math.abs(half!.value)).toBeGreaterThan(1);
      expect(Math.abs(half!.value - full!.value)).toBeLessThanOrEqual(1e-5 * Math.abs(full!.value));
      expect(half!.grads).toHaveLength(full!.grads.length);
      for (let i = 0; i < full!.grads.length; i++) {
        const ref = full!.grads[i]!;
        const scale = Math.max(...ref.map(Math.abs));
        expect(scale).toBeGreaterThan(0);
        let worst = 0;
        for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(half!.grads[i]![j]! - ref[j]!));
        expect(worst / scale, `gradient ${i}`).toBeLessThan(1e-5);
      }
      for (const r of runs) r.peft.dispose();
    },
  );
});
