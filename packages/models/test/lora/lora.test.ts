import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRunContainer, hasAdapterToggle, installPlugins, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  getPeftModel,
  LORA_CONFIG,
  LoraPlugin,
  PeftModel,
  PeftModelForCausalLM,
  PreTrainedModelForSequenceClassification,
  readSafetensors,
  readSafetensorsHeader,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));
const BASE_FIXTURE = join(here, "..", "fixtures", "golden", "llama_gqa_left");
const PEFT_FIXTURE = join(here, "fixtures", "peft_llama_gqa");

const TINY = {
  model_type: "llama",
  vocab_size: 32,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: false,
  initializer_range: 0.2,
};
const IDS = [
  [1, 5, 9, 3, 7, 2],
  [1, 4, 4, 8, 30, 11],
];

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-lora-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function logitsOf(model: { forward(i: { inputIds: number[][] }): { logits: tf.Tensor } }, ids = IDS): Float32Array {
  return tf.tidy(() => model.forward({ inputIds: ids }).logits.dataSync() as Float32Array);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function bytesOf(vars: Map<string, tf.Variable>): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [k, v] of vars) {
    const d = v.dataSync() as Float32Array;
    out.set(k, new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
  }
  return out;
}

/** A few Adam steps on a next-token loss over the trainable variables only. */
function trainSteps(model: PeftModelForCausalLM, steps: number, optimizer: tf.Optimizer): number[] {
  const losses: number[] = [];
  const targets = IDS.map((r) => [...r.slice(1), 0]);
  for (let s = 0; s < steps; s++) {
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.forward({ inputIds: IDS }).logits;
        const labels = tf.oneHot(tf.tensor2d(targets, [2, 6], "int32"), TINY.vocab_size);
        return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
      }, model.trainableVariables());
      optimizer.applyGradients(grads);
      losses.push(value.dataSync()[0]!);
    });
  }
  return losses;
}

describe("getPeftModel", () => {
  it("starts equal to the base (B = 0), freezes the base, and inits A as PEFT (Kaiming-uniform, |A| ≤ 1/√in)", () => {
    const nBefore = tf.memory().numTensors;
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 3 });
    const expected = logitsOf(base);
    const peft = getPeftModel(base, { r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed: 0 });
    expect(maxDiff(logitsOf(peft), expected)).toBeLessThanOrEqual(1e-6);
    // all-linear = every projection but lm_head, written as PEFT writes it (leaf names)
    expect(peft.targetNames).toHaveLength(2 * 7);
    expect(peft.targetNames).not.toContain("lm_head");
    expect(peft.peftConfig.targetModules).toEqual([
      "down_proj",
      "gate_proj",
      "k_proj",
      "o_proj",
      "q_proj",
      "up_proj",
      "v_proj",
    ]);
    const names = peft.trainableVariables().map((v) => [...peft.namedParameters()].find(([, x]) => x === v)![0]);
    expect(
      names.every((n) =>
        /^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$/.test(n),
      ),
    ).toBe(true);
    expect(names).toHaveLength(2 * 7 * 2);
    const q = peft.loraModules().get("model.layers.0.self_attn.q_proj")!;
    const a = q.loraA.dataSync();
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(16));
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.5 / Math.sqrt(16));
    expect([...q.loraB.dataSync()].every((x) => x === 0)).toBe(true);
    expect(q.scaling).toBe(2);
    expect(hasAdapterToggle(peft)).toBe(true);
    const counts = peft.trainableParameterCounts();
    let logged = "";
    peft.printTrainableParameters((l) => (logged = l));
    expect(logged).toBe(
      `trainable params: ${counts.trainable.toLocaleString("en-US")} || all params: ${counts.all.toLocaleString("en-US")} || trainable%: ${((100 * counts.trainable) / counts.all).toFixed(4)}`,
    );
    // 2 layers × r·(in + out) summed over q(16→16) k(16→8) v(16→8) o(16→16) gate/up(16→32) down(32→16)
    expect(counts.trainable).toBe(2 * 4 * (32 + 24 + 24 + 32 + 48 + 48 + 48));
    peft.dispose();
    expect(tf.memory().numTensors).toBe(nBefore);
  });

  it("rsLoRA scaling is alpha/√r; a regex targets full names; bad configs name the field", () => {
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 3 });
    const peft = getPeftModel(base, {
      r: 4,
      loraAlpha: 8,
      useRslora: true,
      targetModules: String.raw`model\.layers\.1\.self_attn\.(q|v)_proj`,
    });
    expect(peft.targetNames).toEqual(["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]);
    expect(peft.loraModules().get("model.layers.1.self_attn.q_proj")!.scaling).toBe(4);
    expect(() => getPeftModel(peft as never, { targetModules: ["q_proj"] })).toThrow(
      /field "model": the model already has LoRA adapters/,
    );
    peft.unload();
    expect(() => getPeftModel(base, { targetModules: ["nope"] })).toThrow(/field "targetModules": no module matches/);
    expect(() => getPeftModel(base, { r: 0, targetModules: ["q_proj"] })).toThrow(
      /field "r": must be a positive integer/,
    );
    expect(() => getPeftModel(base, { targetModules: "(" })).toThrow(
      /field "targetModules": not a valid regular expression/,
    );
    expect(() => getPeftModel(base, { loraDropout: 1, targetModules: ["q_proj"] })).toThrow(/field "loraDropout"/);
    expect(() => getPeftModel(base, { targetModules: ["q_proj"], modulesToSave: ["embed"] })).toThrow(
      /field "modulesToSave"/,
    );
    base.dispose();
  });

  it("after training: adapters off equals the base, base bytes unchanged, optimizer slots only for adapters; merge within 1e-4", () => {
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 5 });
    const baseLogits = logitsOf(base);
    const baseBytes = bytesOf(base.namedParameters());
    const before = tf.memory().numTensors;
    const peft = getPeftModel(
      base,
      { r: 4, loraAlpha: 8, targetModules: ["q_proj", "v_proj", "up_proj"] },
      { seed: 1 },
    );
    const optimizer = tf.train.adam(0.05);
    const losses = trainSteps(peft, 5, optimizer);
    expect(losses[4]).toBeLessThan(losses[0]!);
    const adapted = logitsOf(peft);
    expect(maxDiff(adapted, baseLogits)).toBeGreaterThan(1e-2);
    // adapters off (both ways) gives the base again
    expect(
      maxDiff(
        peft.withAdaptersDisabled(() => logitsOf(peft)),
        baseLogits,
      ),
    ).toBeLessThanOrEqual(1e-6);
    expect(peft.adaptersEnabled).toBe(true);
    peft.disableAdapters();
    expect(maxDiff(logitsOf(peft), baseLogits)).toBeLessThanOrEqual(1e-6);
    peft.enableAdapters();
    expect(maxDiff(logitsOf(peft), adapted)).toBe(0);
    // the base tensors, byte for byte
    for (const [k, bytes] of bytesOf(base.namedParameters())) {
      if (k.includes(".lora_")) continue;
      expect(Buffer.from(bytes).equals(Buffer.from(baseBytes.get(k)!)), k).toBe(true);
    }
    // Adam keeps m and v for each trainable variable and nothing for the base
    const slots = optimizer.getWeights();
    return slots.then((ws) => {
      const trainable = new Set(peft.trainableVariables().map((v) => v.name));
      const slotOwners = ws.filter((w) => w.name !== "iter").map((w) => w.name.replace(/\/(m|v)$/, ""));
      expect(new Set(slotOwners)).toEqual(trainable);
      expect(slotOwners).toHaveLength(2 * 3 * 2 * 2);
      for (const w of ws) if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
      optimizer.dispose();
      const merged = peft.mergeAndUnload();
      expect(merged).toBe(base);
      expect(maxDiff(logitsOf(merged), adapted)).toBeLessThanOrEqual(1e-4);
      expect(merged.linearModules().get("model.layers.0.self_attn.q_proj")!.constructor.name).toBe("Linear");
      expect(merged.trainableVariables()).toHaveLength(merged.namedParameters().size);
      expect(() => peft.forward({ inputIds: IDS })).toThrow(/unloaded or disposed/);
      expect(tf.memory().numTensors).toBe(before);
      merged.dispose();
    });
  });

  it("generates through the adapters with the KV cache; adapters off generates as the base", async () => {
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 5 });
    const prompt = [IDS[0]!.slice(0, 3)];
    const opts = { maxNewTokens: 6, returnLogprobs: true };
    const baseOut = await base.generate(prompt, opts);
    const peft = getPeftModel(base, { r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed: 1 });
    const optimizer = tf.train.adam(0.05);
    trainSteps(peft, 5, optimizer);
    optimizer.dispose();
    const adapted = await peft.generate(prompt, opts);
    // The adapted model's sampled log-probs are its own (not the base's): compare with a full forward.
    const full = tf.tidy(() => tf.logSoftmax(peft.forward({ inputIds: adapted.sequences }).logits).arraySync());
    adapted.newTokens[0]!.forEach((tok, i) => {
      expect(adapted.logprobs![0]![i]!).toBeCloseTo(full[0]![prompt[0]!.length + i - 1]![tok]!, 4);
    });
    expect(adapted.logprobs![0]).not.toEqual(baseOut.logprobs![0]);
    peft.disableAdapters();
    const off = await peft.generate(prompt, opts);
    expect(off.newTokens).toEqual(baseOut.newTokens);
    for (let i = 0; i < off.logprobs![0]!.length; i++)
      expect(off.logprobs![0]![i]!).toBeCloseTo(baseOut.logprobs![0]![i]!, 5);
    peft.dispose();
  });

  it("LoRA dropout (seeded) acts only while a gradient tape records, on the LoRA path only", () => {
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 5 });
    const baseLogits = logitsOf(base);
    const peft = getPeftModel(base, { r: 4, loraDropout: 0.5, targetModules: ["q_proj"] }, { seed: 1 });
    for (const l of peft.loraModules().values()) l.loraB.assign(tf.fill(l.loraB.shape, 0.3));
    const plain = logitsOf(peft);
    expect(maxDiff(logitsOf(peft), plain)).toBe(0);
    const taped = tf.tidy(() => {
      let out: Float32Array | undefined;
      const { grads } = tf.variableGrads(() => {
        const logits = peft.forward({ inputIds: IDS }).logits;
        out = logits.dataSync() as Float32Array;
        return tf.sum(logits) as tf.Scalar;
      }, peft.trainableVariables());
      void grads;
      return out!;
    });
    expect(maxDiff(taped, plain)).toBeGreaterThan(1e-3);
    // with adapters off, nothing of the LoRA path (dropout included) runs
    const off = peft.withAdaptersDisabled(() => logitsOf(peft));
    expect(maxDiff(off, baseLogits)).toBe(0);
    peft.dropoutMode = "eval";
    const evalTaped = tf.tidy(() => {
      let out: Float32Array | undefined;
      tf.variableGrads(() => {
        const logits = peft.forward({ inputIds: IDS }).logits;
        out = logits.dataSync() as Float32Array;
        return tf.sum(logits) as tf.Scalar;
      }, peft.trainableVariables());
      return out!;
    });
    expect(maxDiff(evalTaped, plain)).toBe(0);
    peft.dispose();
  });
});

describe("PEFT format", () => {
  it("loads a PEFT-format adapter (scripts/reference/peft_reference.py) and reproduces torch's logits", async () => {
    const golden = JSON.parse(await readFile(join(PEFT_FIXTURE, "golden.json"), "utf8"));
    const base = await AutoModelForCausalLM.fromPretrained(BASE_FIXTURE);
    const peft = await PeftModel.fromPretrained(base, PEFT_FIXTURE);
    expect(peft).toBeInstanceOf(PeftModelForCausalLM);
    expect(peft.trainableVariables()).toHaveLength(0); // is_trainable=False, as PEFT
    expect(peft.loraModules().size).toBe(6);
    const logits = tf.tidy(
      () =>
        peft
          .forward({
            inputIds: golden.input_ids,
            attentionMask: golden.attention_mask,
            positionIds: golden.position_ids,
          })
          .logits.dataSync() as Float32Array,
    );
    // compare real (unpadded) positions only
    const [b, t, v] = golden.logits_shape as number[];
    let worst = 0;
    for (let i = 0; i < b!; i++)
      for (let j = 0; j < t!; j++) {
        if (golden.attention_mask[i][j] === 0) continue;
        for (let k = 0; k < v!; k++) {
          const idx = (i * t! + j) * v! + k;
          worst = Math.max(worst, Math.abs(logits[idx]! - golden.logits[idx]));
        }
      }
    expect(worst).toBeLessThan(1e-4);
    peft.dispose();
  });

  it("saves PEFT's layout (keys, adapter_config.json fields) and round-trips save → load", async () => {
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 9 });
    const peft = getPeftModel(base, { r: 2, loraAlpha: 16, loraDropout: 0.05, targetModules: ["q_proj", "v_proj"] });
    for (const l of peft.loraModules().values()) l.loraB.assign(tf.randomNormal(l.loraB.shape, 0, 0.1, "float32", 4));
    const adapted = logitsOf(peft);
    const dir = join(root, "saved");
    await peft.savePretrained(dir);
    const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
    expect(config).toMatchObject({
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: 2,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: ["q_proj", "v_proj"],
      bias: "none",
      use_rslora: false,
      use_dora: false,
      fan_in_fan_out: false,
      modules_to_save: null,
      inference_mode: true,
      base_model_name_or_path: null,
    });
    const header = await readSafetensorsHeader(join(dir, "adapter_model.safetensors"));
    expect(header.metadata).toEqual({ format: "pt" });
    const keys = [...header.tensors.keys()].sort();
    expect(keys).toEqual(
      [0, 1]
        .flatMap((i) =>
          ["q_proj", "v_proj"].flatMap((m) =>
            ["A", "B"].map((ab) => `base_model.model.model.layers.${i}.self_attn.${m}.lora_${ab}.weight`),
          ),
        )
        .sort(),
    );
    expect(header.tensors.get("base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight")).toMatchObject({
      dtype: "F32",
      shape: [2, 16],
    });
    expect(header.tensors.get("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")!.shape).toEqual([8, 2]);
    // load onto a fresh copy of the same base
    const fresh = AutoModelForCausalLM.fromConfig(TINY, { seed: 9 });
    const loaded = await PeftModel.fromPretrained(fresh, dir, { isTrainable: true });
    expect(maxDiff(logitsOf(loaded), adapted)).toBe(0);
    expect(loaded.trainableVariables()).toHaveLength(8);
    expect(loaded.peftConfig.loraDropout).toBe(0.05);
    // a tensor of the wrong shape names the file and tensor
    const wrong = AutoModelForCausalLM.fromConfig({ ...TINY, hidden_size: 32 }, { seed: 9 });
    await expect(PeftModel.fromPretrained(wrong, dir)).rejects.toThrow(
      /adapter_model\.safetensors, tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight": shape \[2,16\]/,
    );
    expect(wrong.linearModules().get("model.layers.0.self_attn.q_proj")!.constructor.name).toBe("Linear");
    wrong.dispose();
    peft.dispose();
    loaded.dispose();
  });
});

describe("reward model with modulesToSave: ['score']", () => {
  it("trains and saves the score head as PEFT does; adapters off uses the original head", async () => {
    const rm = PreTrainedModelForSequenceClassification.fromConfig(TINY, { numLabels: 1, seed: 2 });
    const baseScores = tf.tidy(() => rm.forward({ inputIds: IDS }).logits.dataSync());
    const peft = getPeftModel(rm, { r: 2, targetModules: ["q_proj", "v_proj"], modulesToSave: ["score"] });
    expect(peft.peftConfig.taskType).toBe("SEQ_CLS");
    expect(peft.numLabels).toBe(1);
    expect(peft.modulesToSaveNames).toEqual(["score"]);
    const trainable = [...peft.namedParameters()].filter(([, v]) => v.trainable).map(([k]) => k);
    expect(trainable).toContain("base_model.model.score.weight");
    expect(trainable).not.toContain("base_model.model.score.original_module.weight");
    const opt = tf.train.sgd(0.5);
    tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => tf.sum(peft.forward({ inputIds: IDS }).logits) as tf.Scalar,
        peft.trainableVariables(),
      );
      opt.applyGradients(grads);
    });
    const trained = tf.tidy(() => peft.forward({ inputIds: IDS }).logits.dataSync());
    expect(maxDiff(trained, baseScores)).toBeGreaterThan(1e-3);
    const off = peft.withAdaptersDisabled(() => tf.tidy(() => peft.forward({ inputIds: IDS }).logits.dataSync()));
    expect(maxDiff(off, baseScores)).toBeLessThanOrEqual(1e-6);
    const dir = join(root, "rm");
    await peft.savePretrained(dir);
    const config = JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8"));
    expect(config.task_type).toBe("SEQ_CLS");
    expect(config.modules_to_save).toEqual(["score", "classifier"]);
    const saved = await readSafetensors(join(dir, "adapter_model.safetensors"));
    expect(saved.tensors.has("base_model.model.score.weight")).toBe(true);
    expect([...saved.tensors.keys()].filter((k) => !k.includes("lora_"))).toEqual(["base_model.model.score.weight"]);
    const fresh = PreTrainedModelForSequenceClassification.fromConfig(TINY, { numLabels: 1, seed: 2 });
    const loaded = await PeftModel.fromPretrained(fresh, dir);
    expect(
      maxDiff(
        tf.tidy(() => loaded.forward({ inputIds: IDS }).logits.dataSync()),
        trained,
      ),
    ).toBe(0);
    const merged = peft.mergeAndUnload();
    expect(
      maxDiff(
        tf.tidy(() => merged.forward({ inputIds: IDS }).logits.dataSync()),
        trained,
      ),
    ).toBeLessThanOrEqual(1e-4);
    merged.dispose();
    loaded.dispose();
    opt.dispose();
  });
});

describe("LoraPlugin", () => {
  it("registers like any plugin and wraps the model through its PluginContext", () => {
    const container = createRunContainer();
    const plugin = new LoraPlugin({ r: 2, targetModules: ["q_proj"] }, { seed: 3 });
    const transforms = installPlugins(container, [plugin]);
    expect(container.resolve(LORA_CONFIG)).toBe(plugin.config);
    const base = AutoModelForCausalLM.fromConfig(TINY, { seed: 9 });
    const model = transforms.apply(base);
    expect(model).toBeInstanceOf(PeftModelForCausalLM);
    expect(plugin.model).toBe(model);
    expect(hasAdapterToggle(model)).toBe(true);
    expect(model.trainableVariables()).toHaveLength(4);
    model.dispose();
  });
});
