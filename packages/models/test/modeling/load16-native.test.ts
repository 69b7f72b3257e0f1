/**
 * Issue 15 on the fast path (cpu + native-blas): a model LOADED with `dtype: "bfloat16"` (load16) runs
 * the fused native decoder (bf16) on packs made once from its 16-bit bits, not the tfjs fall-back. For
 * every family layout, completion log-probs and the LoRA adapters' gradients, with left and right padding,
 * equal (1) the float32 model's (the same bf16 values loaded as float32, on the native decoder) and (2)
 * the bf16 model's own tfjs fall-back.
 *
 * The bound, derived: with `computeDtype: "float32"` a bf16 pack is widened exactly per block, so all
 * three runs form the same products of the same float32 values with float32 sums; they differ only in
 * summation order, |Δ| ≤ γ_K·Σ|a||b| with K ≤ 64 (γ_K ≈ K·2⁻²⁴ ≈ 4e-6) per product, through a few layers
 * and a log-softmax of O(1) values: 1e-5 relative to the largest magnitude. A wrong weight, pack or
 * layout slot moves the values by O(1e-2) or more.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, Rng, shutdownEngine, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  getPeftModel,
  HalfPrecisionLinear,
  type PeftModelForCausalLM,
  type PreTrainedModelForCausalLM,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activeDecoderAddon } from "../../src/modeling/native/addon.js";
import { cachedPackInfo, hasWidenedTable } from "../../src/modeling/native/packs.js";
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
    "%s: a bf16-loaded model runs the native decoder on 16-bit packs and equals float32 and its tfjs fall-back",
    async (name, config) => {
      const dir = join(root, name);
      const source = randomModel(config, 5);
      await source.savePretrained(dir, { dtype: "BF16" });
      source.dispose();
      const data = batch(Number(config["vocab_size"]));
      const lora = { r: 4, loraAlpha: 8, targetModules: "all-linear" as const };
      const runs = [];
      for (const [dtype, native] of [
        ["bfloat16", true],
        ["float32", true],
        ["bfloat16", false],
      ] as const) {
        const base = await AutoModelForCausalLM.fromPretrained(dir, { dtype });
        base.decoder.useNativeDecoder = native;
        const q = base.decoder.layers[0]!.selfAttn.modules.qProj;
        const head = base.decoder.lmHead;
        if (dtype === "bfloat16") {
          expect(q).toBeInstanceOf(HalfPrecisionLinear);
          expect(head).toBeInstanceOf(HalfPrecisionLinear);
        }
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
        expect(direct === undefined, `${dtype} native=${native}: the fused decoder runs`).toBe(!native);
        if (direct !== undefined) tf.dispose([direct.logProbs]);
        labels.dispose();
        if (dtype === "bfloat16" && native) {
          // The fused decoder ran from 16-bit packs of the loaded bits (q_proj's and the LM head's).
          const { addon } = activeDecoderAddon()!;
          for (const m of [q, head] as HalfPrecisionLinear[]) {
            const info = cachedPackInfo(addon, m.weight.storageKey);
            expect(info, m.name).toMatchObject({
              rows: m.outFeatures,
              cols: m.inFeatures,
              dtype: "bfloat16",
              compute: "float32",
            });
            // A bf16 pack holds 2 bytes per element (plus panel padding), not a float32 copy.
            expect(info!.bytes).toBeGreaterThanOrEqual(2 * m.bits.length);
            expect(info!.bytes).toBeLessThan(4 * m.bits.length);
          }
          // The bf16 embedding's rows are gathered from its bits: no float32 copy of the table.
          const table = base.decoder.embedding.describe();
          expect(table.kind).toBe("dense16");
          if (table.kind === "dense16") expect(hasWidenedTable(table.key)).toBe(false);
        }
        runs.push({ dtype, base, peft, ...valueAndGrads(peft, base, data) });
      }
      const [half, full, fallback] = runs;
      expect(Math.abs(half!.value)).toBeGreaterThan(1);
      for (const other of [full!, fallback!]) {
        expect(Math.abs(half!.value - other.value)).toBeLessThanOrEqual(1e-5 * Math.abs(other.value));
        expect(half!.grads).toHaveLength(other.grads.length);
        for (let i = 0; i < other.grads.length; i++) {
          const ref = other.grads[i]!;
          const scale = Math.max(...ref.map(Math.abs));
          expect(scale).toBeGreaterThan(0);
          let worst = 0;
          for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(half!.grads[i]![j]! - ref[j]!));
          expect(worst / scale, `gradient ${i}`).toBeLessThan(1e-5);
        }
      }
      for (const r of runs) r.peft.dispose();
    },
  );
});
