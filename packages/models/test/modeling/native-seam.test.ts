/**
 * Issue 13: the native decoder behind the `DecoderAccelerator` seam. The weight layout the TypeScript
 * side fills comes from the addon (`decoderLayout()`, one table in packages/models/native/src/layout.h)
 * and is filled by slot name; projections are read through `LinearModule.describe()`, so a module that
 * does not describe itself makes the accelerator decline and the tfjs ops run (same numbers).
 */
import { fusedSequenceLogProbs, initEngine, nativeBlasPlugin, Rng, shutdownEngine, tf } from "@prefkit/core";
import { type LinearModule, nativeDecoderStatus, type PreTrainedModelForCausalLM } from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activeDecoderAddon } from "../../src/modeling/native/addon.js";
import { compileLayout, layoutArrays } from "../../src/modeling/native/layout.js";
import { FAMILIES, randomModel } from "../generation/helpers.js";
import { skipWithoutNativeDecoder } from "./native-helpers.js";

const SKIP = skipWithoutNativeDecoder("native decoder seam tests");

afterAll(() => shutdownEngine());

/** Where each slot's weight lives, by HF parameter name (what the slot names mean). */
const GLOBAL_NAMES: Record<string, string> = {
  embed: "model.embed_tokens.weight",
  final_norm: "model.norm.weight",
  lm_head: "model.embed_tokens.weight", // the families below tie it
};
const LAYER_NAMES: Record<string, string> = {
  input_norm: "input_layernorm.weight",
  post_norm: "post_attention_layernorm.weight",
  q_norm: "self_attn.q_norm.weight",
  k_norm: "self_attn.k_norm.weight",
  ...Object.fromEntries(
    ["q", "k", "v", "o"].flatMap((p) => [
      [p, `self_attn.${p}_proj.weight`],
      [`${p}_bias`, `self_attn.${p}_proj.bias`],
    ]),
  ),
  ...Object.fromEntries(["gate", "up", "down"].map((p) => [p, `mlp.${p}_proj.weight`])),
};

describe.skipIf(SKIP)("native decoder seam", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  });

  it("the addon loads and takes core's engine", () => {
    const decoder = nativeDecoderStatus();
    expect(decoder.available, decoder.reason).toBe(true);
    expect(activeDecoderAddon()).toBeDefined();
  });

  it.each(["qwen2_bias", "qwen3_qknorm"])(
    "%s: the weights array follows the addon's layout, slot by slot name",
    (family) => {
      const { addon, layout } = activeDecoderAddon()!;
      const names = addon.decoderLayout();
      expect(layout.names).toEqual(names);
      expect(names.projections).toEqual(["q", "k", "v", "o", "gate", "up", "down"]);
      const model = randomModel(FAMILIES[family]!, 3);
      const params = model.namedParameters();
      const arrays = layoutArrays(model.decoder, layout)!;
      expect(arrays).toBeDefined();
      const layers = model.decoderConfig.numLayers;
      expect(arrays.variables.length).toBe(names.global.length + layers * names.layer.length);
      names.global.forEach((name, i) => {
        expect(arrays.variables[i], name).toBe(params.get(GLOBAL_NAMES[name]!));
      });
      for (let l = 0; l < layers; l++) {
        names.layer.forEach((name, i) => {
          const expected = params.get(`model.layers.${l}.${LAYER_NAMES[name]!}`) ?? null;
          expect(arrays.variables[names.global.length + l * names.layer.length + i], `${l}.${name}`).toBe(expected);
        });
      }
      expect(arrays.loraShape.length).toBe(2 * layers * names.projections.length);
      model.dispose();
    },
  );

  it("refuses a layout slot it does not know, in one line", () => {
    const names = activeDecoderAddon()!.addon.decoderLayout();
    const stale = { ...names, layer: [...names.layer, "o_scale"] };
    expect(() => compileLayout(stale)).toThrow(
      /^native decoder: the addon's layout has a layer slot "o_scale" that this @prefkit\/models does not fill \(a stale build\? rebuild with `npm run build:native`\)$/,
    );
    expect(() => compileLayout({ ...names, projections: [...names.projections, "w_proj"] })).toThrow(
      /LoRA projection slot "w_proj"/,
    );
  });

  it("the addon checks the arrays against its own table", () => {
    const { addon } = activeDecoderAddon()!;
    expect(() => addon.attachEngine({})).toThrow("attachEngine expects @prefkit/core's engineAbi");
    const ctx = addon.decoderCreate(new Float64Array([1, 8, 2, 1, 4, 16, 10, 1e-6, 0, 0, -1, 0]), new Float32Array(2));
    const ids = new Int32Array([1, 2]);
    const run = (weights: Array<Float32Array | null>) =>
      addon.decoderForward(ctx, weights, ids, null, new Int32Array([0, 1]), ids, 1, 2, false, false);
    expect(() => run([])).toThrow("decoder: weights must be an array of 3 + 14 * layers entries (decoderLayout())");
    const weights: Array<Float32Array | null> = Array.from({ length: 17 }, () => null);
    expect(() => run(weights)).toThrow("decoder: the required weight embed (entry 0) is null");
    weights[0] = new Float32Array(3);
    expect(() => run(weights)).toThrow("decoder: the weight embed (entry 0) has 3 elements, not 80");
  });

  it("declines a projection that does not describe itself: the tfjs ops run, with the same numbers", () => {
    const baseline = tf.memory().numTensors;
    const config = FAMILIES["smollm_tied"]!;
    const rng = new Rng(5);
    const ids = Array.from({ length: 2 }, () => Array.from({ length: 7 }, () => rng.int(64)));
    const completion = ids.map((row) => row.map((_, t) => (t >= 2 ? 1 : 0)));
    const logProbs = (model: PreTrainedModelForCausalLM) =>
      tf.tidy(() => fusedSequenceLogProbs(model, ids, completion).sums.dataSync().slice());
    const native = randomModel(config, 3);
    const fastValues = logProbs(native);
    const opaque = randomModel(config, 3);
    // The same projection behind a module that only has `apply` (no describe()).
    opaque.replaceLinear(
      "model.layers.1.mlp.up_proj",
      (base): LinearModule => ({
        name: base.name,
        inFeatures: base.inFeatures,
        outFeatures: base.outFeatures,
        apply: (x) => base.apply(x),
        parameters: () => base.parameters(),
      }),
    );
    const labels = tf.tensor2d([[1, 2]], [1, 2], "int32");
    const direct = native.directTokenLogProbs({ inputIds: [[3, 4]] }, labels, {});
    expect(direct).toBeDefined();
    expect(opaque.directTokenLogProbs({ inputIds: [[3, 4]] }, labels, {})).toBeUndefined();
    expect(layoutArrays(opaque.decoder, activeDecoderAddon()!.layout)).toBeUndefined();
    const tfjs = randomModel(config, 3);
    tfjs.decoder.useNativeDecoder = false;
    const opaqueValues = logProbs(opaque);
    expect(Array.from(opaqueValues)).toEqual(Array.from(logProbs(tfjs))); // the tfjs ops, bit for bit
    for (let i = 0; i < fastValues.length; i++) {
      expect(Math.abs(opaqueValues[i]! - fastValues[i]!) / Math.max(1, Math.abs(fastValues[i]!))).toBeLessThan(1e-5);
    }
    tf.dispose([labels, direct!.logProbs]);
    for (const m of [native, opaque, tfjs]) m.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});
