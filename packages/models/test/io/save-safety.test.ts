// Issue 12 regressions for every save path: nothing of the user's is deleted or changed, non-finite weights
// are refused, and config.json keeps transformers' floats.
import { cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError, tf } from "@prefkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileTree } from "../../../../test/helpers/files.js";
import { TINY_LLAMA } from "../../../../test/helpers/tiny-llama.js";
import { pythonFloat, readSafetensors, stringifyJson, writeSafetensors } from "../../src/io/index.js";
import { getPeftModel } from "../../src/lora/index.js";
import { AutoModelForCausalLM, AutoModelForSequenceClassification } from "../../src/modeling/index.js";
import { asyncErrorOf, tempDir } from "./helpers.js";

const GOLDEN = new URL("../fixtures/golden/llama3_rope_scaling/", import.meta.url).pathname;

let root: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  await tf.setBackend("cpu");
  ({ dir: root, cleanup } = await tempDir());
});
afterAll(() => cleanup());

const tree = (dir: string) => fileTree(dir);

/** A directory a user might point `savePretrained` at: a checkpoint, notes, an adapter, a README. */
async function userDir(name: string): Promise<{ dir: string; before: Record<string, string> }> {
  const dir = join(root, name);
  await mkdir(join(dir, "checkpoint-1"), { recursive: true });
  await writeFile(join(dir, "checkpoint-1", "trainer_state.json"), '{"global_step": 1}');
  await writeFile(join(dir, "checkpoint-1", "model.safetensors"), "not really weights");
  await writeFile(join(dir, "notes.txt"), "my notes\n");
  await writeFile(join(dir, "README.md"), "# my model\n");
  await writeFile(join(dir, "adapter_config.json"), '{"r": 8}\n');
  await writeSafetensors(join(dir, "adapter_model.safetensors"), { a: { shape: [1], data: new Float32Array([1]) } });
  // names that look like weights but are not transformers' shard pattern
  await writeFile(join(dir, "my-model-00001-of-00002.safetensors"), "x");
  await writeFile(join(dir, "model-00001-of-00002.bin"), "y");
  return { dir, before: await tree(dir) };
}

function expectKept(before: Record<string, string>, after: Record<string, string>): void {
  for (const [f, h] of Object.entries(before)) expect(after[f], f).toBe(h);
}

describe("savePretrained deletes nothing it did not write", () => {
  it("a causal LM saved into a directory with a checkpoint, notes, an adapter and a README keeps all of them", async () => {
    const { dir, before } = await userDir("lm");
    const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 1 });
    await model.savePretrained(dir);
    const after = await tree(dir);
    expectKept(before, after);
    expect(Object.keys(after).sort()).toEqual([...Object.keys(before), "config.json", "model.safetensors"].sort());
    const back = await AutoModelForCausalLM.fromPretrained(dir);
    expect(back.namedParameters().size).toBe(model.namedParameters().size);
    back.dispose();
    model.dispose();
  });

  it("saving into the directory the model was loaded from keeps its other files, and config.json is byte-identical", async () => {
    const dir = join(root, "loaded-from");
    await cp(GOLDEN, dir, { recursive: true });
    await writeFile(join(dir, "notes.txt"), "keep me\n");
    const before = await tree(dir);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    await model.savePretrained(dir);
    const after = await tree(dir);
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    for (const f of ["notes.txt", "golden.json", "config.json", "generation_config.json"]) {
      expect(after[f], f).toBe(before[f]);
    }
    expect(await readdir(dir)).not.toContainEqual(expect.stringContaining(".tmp-"));
    model.dispose();
  });

  it("an earlier sharded save's index and shards, and only those, are removed", async () => {
    const { dir, before } = await userDir("shards");
    await writeFile(join(dir, "model-00001-of-00002.safetensors"), "old shard 1");
    await writeFile(join(dir, "model-00002-of-00002.safetensors"), "old shard 2");
    await writeFile(join(dir, "model.safetensors.index.json"), '{"weight_map": {}}');
    const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 2 });
    await model.savePretrained(dir);
    const after = await tree(dir);
    expectKept(before, after);
    expect(Object.keys(after).sort()).toEqual([...Object.keys(before), "config.json", "model.safetensors"].sort());
    model.dispose();
  });

  it("non-finite weights are refused before anything is written", async () => {
    const { dir, before } = await userDir("nan");
    const model = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 1 });
    const v = model.namedParameters().get("model.layers.0.mlp.down_proj.weight")!;
    const data = v.dataSync().slice() as Float32Array;
    data[5] = Number.NaN;
    v.assign(tf.tensor(data, v.shape));
    const e = await asyncErrorOf(() => model.savePretrained(dir), CheckpointError);
    expect(e.message).toBe(
      `${join(dir, "model.safetensors")}, tensor "model.layers.0.mlp.down_proj.weight": holds NaN at index 5: refusing to save non-finite weights`,
    );
    expect(await tree(dir)).toEqual(before);
    const fresh = join(root, "nan-fresh");
    await asyncErrorOf(() => model.savePretrained(fresh), CheckpointError);
    await expect(readdir(fresh)).rejects.toThrow(/ENOENT/);
    model.dispose();
  });

  it("a PEFT adapter saved into a user's directory keeps everything else; a NaN adapter is refused", async () => {
    const { dir, before } = await userDir("peft");
    await rm(join(dir, "adapter_config.json"));
    await rm(join(dir, "adapter_model.safetensors"));
    const kept = await tree(dir);
    const base = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 1 });
    const peft = getPeftModel(base, { r: 2, loraAlpha: 4, targetModules: ["q_proj", "v_proj"] });
    await peft.savePretrained(dir);
    const after = await tree(dir);
    expectKept(kept, after);
    expect(Object.keys(after).sort()).toEqual(
      [...Object.keys(kept), "adapter_config.json", "adapter_model.safetensors"].sort(),
    );
    expect(await readFile(join(dir, "adapter_config.json"), "utf8")).toContain('"lora_dropout": 0.0,');
    const a = [...peft.adapterStateDict().values()][0]!;
    a.assign(tf.fill(a.shape, Number.POSITIVE_INFINITY));
    const e = await asyncErrorOf(() => peft.savePretrained(dir), CheckpointError);
    expect(e.message).toMatch(/holds Infinity at index 0: refusing to save non-finite weights$/);
    expect(await tree(dir)).toEqual(after);
    expect(before["notes.txt"]).toBe(after["notes.txt"]);
    base.dispose();
  });

  it("a reward model saved into a user's directory keeps everything else", async () => {
    const { dir, before } = await userDir("rm");
    const lm = AutoModelForCausalLM.fromConfig(TINY_LLAMA, { seed: 1 });
    const src = join(root, "rm-src");
    await lm.savePretrained(src);
    const rm = await AutoModelForSequenceClassification.fromPretrained(src, { numLabels: 1, seed: 3 });
    await rm.savePretrained(dir);
    const after = await tree(dir);
    expectKept(before, after);
    expect(Object.keys(after).sort()).toEqual([...Object.keys(before), "config.json", "model.safetensors"].sort());
    lm.dispose();
    rm.dispose();
  });
});

describe("config.json floats", () => {
  it("writes Python floats as transformers does", () => {
    const cases: Array<[number, string]> = [
      [8, "8.0"],
      [10000, "10000.0"],
      [500000, "500000.0"],
      [1e-6, "1e-06"],
      [1e-5, "1e-05"],
      [0.0001, "0.0001"],
      [0.02, "0.02"],
      [1.5, "1.5"],
      [-2, "-2.0"],
      [1e16, "1e+16"],
      [123456789.125, "123456789.125"],
      [0, "0.0"],
    ];
    for (const [x, text] of cases) expect(pythonFloat(x), String(x)).toBe(text);
    expect(
      stringifyJson(
        { rope_theta: 10000, n: 3, rope_scaling: { factor: 8 } },
        { floatFields: ["rope_theta", "rope_scaling.factor"] },
      ),
    ).toBe('{\n  "n": 3,\n  "rope_scaling": {\n    "factor": 8.0\n  },\n  "rope_theta": 10000.0\n}\n');
    expect(stringifyJson({ s: "café" })).toBe('{\n  "s": "caf\\u00e9"\n}\n');
  });

  it("a Llama 3 config with rope_scaling round-trips byte for byte (factor 8.0, rope_theta 500000.0, rms_norm_eps 1e-05)", async () => {
    const original = await readFile(join(GOLDEN, "config.json"), "utf8");
    expect(original).toContain('"factor": 8.0,');
    const out = join(root, "llama3-copy");
    const model = await AutoModelForCausalLM.fromPretrained(GOLDEN);
    await model.savePretrained(out);
    const saved = await readFile(join(out, "config.json"), "utf8");
    expect(saved).toBe(original);
    for (const field of [
      '"factor": 8.0',
      '"high_freq_factor": 4.0',
      '"low_freq_factor": 1.0',
      '"rope_theta": 500000.0',
    ])
      expect(saved).toContain(field);
    const tensors = await readSafetensors(join(out, "model.safetensors"));
    expect(tensors.tensors.size).toBeGreaterThan(0);
    model.dispose();
  });
});
