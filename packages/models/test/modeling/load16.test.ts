/**
 * Issue 15 item 1: `fromPretrained(dir, { dtype })`. In float32 mode the golden fixtures' logits are
 * unchanged; loaded as bfloat16 / float16 the frozen weights stay 16-bit in memory and the logits equal
 * those of `scripts/reference/load16_reference.py` (torch: the checkpoint cast to that dtype, then a
 * float32 forward) up to float32 summation-order noise. The weights are identical, so the bound is
 * float32 noise, not a rounding bound: |ours − torch| ≤ 1e-5 · max(1, max |logit|).
 */
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, hasHalfPrecisionWeights, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  AutoModelForSequenceClassification,
  type HalfPrecisionLinear,
  type LoadDtype,
  loadCheckpointWeights,
  type PreTrainedModelForCausalLM,
  readSafetensorsHeader,
  writeSafetensors,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type B64Array, decode, goldenFixtures, maskedMaxAbsDiff, readGolden, useBackend } from "./golden.js";

const here = dirname(fileURLToPath(import.meta.url));
const LOAD16 = resolve(here, "..", "fixtures", "load16");

/** One fixture of `test/fixtures/load16` (written by scripts/reference/load16_reference.py). */
interface Load16Golden {
  fixture: string;
  weights_file_dtype: "F32" | "BF16" | "F16";
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  logits_compare_mask: number[][];
  dtypes: Record<"bfloat16" | "float16", { logits: B64Array; max_change_vs_float32_golden: number }>;
}

const fixtures = goldenFixtures();
const load16 = (name: string): Load16Golden =>
  JSON.parse(readFileSync(join(LOAD16, `${name}.json`), "utf8")) as Load16Golden;

/** The relative float32-noise bound: |a − b| ≤ 1e-5 · max(1, max |b|) on compared positions. */
function noiseBound(ref: Float32Array): number {
  let scale = 1;
  for (const x of ref) scale = Math.max(scale, Math.abs(x));
  return 1e-5 * scale;
}

async function logitsOf(model: PreTrainedModelForCausalLM, g: Load16Golden): Promise<Float32Array> {
  const { logits } = model.forward({
    inputIds: g.input_ids,
    attentionMask: g.attention_mask,
    positionIds: g.position_ids,
  });
  const out = (await logits.data()) as Float32Array;
  logits.dispose();
  return out;
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "prefkit-load16-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe.each(["cpu", "wasm"])("dtype on load, on %s", (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it("finds every fixture's 16-bit golden", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(8);
    for (const { name } of fixtures) expect(load16(name).fixture).toBe(name);
  });

  describe.each(fixtures)("$name", ({ name, dir }) => {
    it('"float32" (and the default) leaves the golden logits unchanged', async () => {
      const golden = readGolden(dir);
      const g = load16(name);
      for (const options of [{}, { dtype: "float32" as const }]) {
        const model = await AutoModelForCausalLM.fromPretrained(dir, options);
        expect(model.dtype).toBe("float32");
        expect(model.halfPrecisionWeights().size).toBe(0);
        const err = maskedMaxAbsDiff(
          await logitsOf(model, g),
          decode(golden.logits),
          g.logits_compare_mask,
          golden.logits.shape[2]!,
        );
        expect(err).toBeLessThanOrEqual(1e-4);
        model.dispose();
      }
    });

    it.each(["bfloat16", "float16"] as const)(
      "%s: the projections and embedding stay 16-bit, and the logits equal torch's on the same 16-bit weights",
      async (dtype) => {
        const g = load16(name);
        const baseline = tf.memory().numTensors;
        const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype });
        expect(model.dtype).toBe(dtype);
        // What is 16-bit: every projection, the embedding (and with it a tied lm_head), an untied lm_head.
        for (const [module, m] of model.linearModules()) {
          expect(m.describe?.()?.kind, module).toBe("dense16");
          expect((m as HalfPrecisionLinear).dtype).toBe(dtype);
        }
        expect(model.decoder.embedding.describe().kind).toBe("dense16");
        const half = model.halfPrecisionWeights();
        const params = model.namedParameters();
        expect(half.has("model.embed_tokens.weight")).toBe(true);
        for (const [n, v] of params) expect(v.shape.length === 1, `${n} is a norm or a bias`).toBe(true);
        expect(half.size + params.size).toBe(model.weights.all().size);
        expect(hasHalfPrecisionWeights(model)).toBe(true);

        const ours = await logitsOf(model, g);
        const ref = decode(g.dtypes[dtype].logits);
        const v = g.dtypes[dtype].logits.shape[2]!;
        const err = maskedMaxAbsDiff(ours, ref, g.logits_compare_mask, v);
        expect(err).toBeLessThanOrEqual(noiseBound(ref));
        // The bound is far below what rounding does to a float32 checkpoint: the test sees a missing rounding.
        if (g.weights_file_dtype === "F32") {
          const float32 = decode(readGolden(dir).logits);
          expect(maskedMaxAbsDiff(ours, float32, g.logits_compare_mask, v)).toBeGreaterThan(20 * noiseBound(ref));
        }
        model.dispose();
        expect(tf.memory().numTensors).toBe(baseline);
      },
    );
  });
});

describe("the dtype option", () => {
  const bf16 = fixtures.find((f) => f.name === "smollm_tied_bf16")!;
  const f16 = fixtures.find((f) => f.name === "qwen3_qknorm")!;
  const f32 = fixtures.find((f) => f.name === "llama_gqa_left")!;

  beforeAll(async () => {
    await useBackend("cpu");
  });

  async function configErrorOf(promise: Promise<unknown>): Promise<ConfigError> {
    try {
      await promise;
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return e as ConfigError;
    }
    throw new Error("expected a ConfigError");
  }

  it('"auto" follows config.json\'s torch_dtype, else the first floating tensor', async () => {
    for (const [fixture, want] of [
      [bf16, "bfloat16"],
      [f16, "float16"],
      [f32, "float32"],
    ] as const) {
      const model = await AutoModelForCausalLM.fromPretrained(fixture.dir, { dtype: "auto" });
      expect(model.dtype, fixture.name).toBe(want);
      model.dispose();
    }
    // Without torch_dtype (older configs), the checkpoint's first floating tensor decides.
    const dir = join(scratch, "no-torch-dtype");
    await mkdir(dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(bf16.dir, "config.json"), "utf8"));
    delete config.torch_dtype;
    await writeFile(join(dir, "config.json"), JSON.stringify(config));
    await writeFile(join(dir, "model.safetensors"), readFileSync(join(bf16.dir, "model.safetensors")));
    const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "auto" });
    expect(model.dtype).toBe("bfloat16");
    model.dispose();
  });

  it("refuses a bad dtype value in one line naming the option", async () => {
    for (const bad of ["bf16", "float64", "", 16]) {
      const e = await configErrorOf(AutoModelForCausalLM.fromPretrained(bf16.dir, { dtype: bad as LoadDtype }));
      expect(e.field).toBe("dtype");
      expect(e.message).toBe(
        `field "dtype": must be "float32", "bfloat16", "float16" or "auto", got ${JSON.stringify(bad)}`,
      );
      expect(e.message).not.toContain("\n");
    }
    const e = await configErrorOf(
      AutoModelForSequenceClassification.fromPretrained(bf16.dir, { dtype: "half" as LoadDtype, numLabels: 1 }),
    );
    expect(e.field).toBe("dtype");
  });

  it('refuses "auto" over a torch_dtype prefkit cannot hold, naming the file and the field', async () => {
    for (const [value, field] of [
      ["float64", "torch_dtype"],
      ["int8", "torch_dtype"],
      ["float8_e4m3fn", "dtype"],
    ] as const) {
      const dir = join(scratch, `auto-${value}`);
      await mkdir(dir, { recursive: true });
      const config = JSON.parse(readFileSync(join(bf16.dir, "config.json"), "utf8"));
      delete config.torch_dtype;
      config[field] = value;
      await writeFile(join(dir, "config.json"), JSON.stringify(config));
      await writeFile(join(dir, "model.safetensors"), readFileSync(join(bf16.dir, "model.safetensors")));
      const e = await configErrorOf(AutoModelForCausalLM.fromPretrained(dir, { dtype: "auto" }));
      expect(e.field).toBe(field);
      expect(e.file).toBe(join(dir, "config.json"));
      expect(e.message).toContain(`"${value}" is not a dtype prefkit can load (float32, bfloat16, float16)`);
      expect(e.message).not.toContain("\n");
      // An explicit dtype does not read torch_dtype at all.
      const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
      model.dispose();
    }
  });

  it("reads sharded checkpoints in 16 bits: the same weights, bit for bit, as the single file", async () => {
    const dir = join(scratch, "sharded");
    await mkdir(dir, { recursive: true });
    const header = await readSafetensorsHeader(join(bf16.dir, "model.safetensors"));
    const { tensors } = await loadCheckpointWeights(bf16.dir, { halfPrecision: "bfloat16" });
    const names = [...header.tensors.keys()];
    const half = Math.ceil(names.length / 2);
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [names.slice(0, half), names.slice(half)].entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      const shard = new Map(
        part.map((n) => [
          n,
          { shape: tensors.get(n)!.shape, data: tensors.get(n)!.halfPrecision!.bits, dtype: "BF16" as const },
        ]),
      );
      await writeSafetensors(join(dir, file), shard, { format: "pt" });
      for (const n of part) weightMap[n] = file;
    }
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await writeFile(join(dir, "config.json"), readFileSync(join(bf16.dir, "config.json")));
    const sharded = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
    const single = await AutoModelForCausalLM.fromPretrained(bf16.dir, { dtype: "bfloat16" });
    const a = sharded.halfPrecisionWeights();
    const b = single.halfPrecisionWeights();
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [n, w] of a) expect(Buffer.from(w.bits.buffer).equals(Buffer.from(b.get(n)!.bits.buffer)), n).toBe(true);
    sharded.dispose();
    single.dispose();
  });

  it("a file already in the dtype is read into the bits as they are; another dtype is rounded", async () => {
    const raw = readFileSync(join(bf16.dir, "model.safetensors"));
    const header = await readSafetensorsHeader(join(bf16.dir, "model.safetensors"));
    const model = await AutoModelForCausalLM.fromPretrained(bf16.dir, { dtype: "bfloat16" });
    for (const [name, w] of model.halfPrecisionWeights()) {
      const [begin, end] = header.tensors.get(name)!.dataOffsets;
      const onDisk = raw.subarray(header.dataStart + begin, header.dataStart + end);
      expect(Buffer.from(w.bits.buffer, w.bits.byteOffset, w.bits.byteLength).equals(onDisk), name).toBe(true);
    }
    model.dispose();
    // F16 file as bf16: bf16(f16 value), the values torch's cast gives (checked by the logits above).
    const cross = await AutoModelForCausalLM.fromPretrained(f16.dir, { dtype: "bfloat16" });
    const f16Values = (await loadCheckpointWeights(f16.dir)).tensors.get("model.layers.0.mlp.up_proj.weight")!.data;
    const bits = cross.halfPrecisionWeights().get("model.layers.0.mlp.up_proj.weight")!.bits;
    const { float32ToBf16 } = await import("@prefkit/models");
    expect(Buffer.from(bits.buffer).equals(Buffer.from(float32ToBf16(f16Values).buffer))).toBe(true);
    cross.dispose();
  });

  it("sequence classification: the body is 16-bit, the score head a float32 variable", async () => {
    const rm16 = await AutoModelForSequenceClassification.fromPretrained(bf16.dir, { dtype: "bfloat16", numLabels: 1 });
    expect(rm16.dtype).toBe("bfloat16");
    expect(rm16.score.describe?.()?.kind).toBe("dense");
    expect(rm16.namedParameters().get("score.weight")!.trainable).toBe(true);
    expect(rm16.halfPrecisionWeights().has("score.weight")).toBe(false);
    expect(rm16.halfPrecisionWeights().has("model.layers.0.self_attn.q_proj.weight")).toBe(true);
    // Same scores as the float32 load of the same (bf16) values, and the fresh head is bf16-exact.
    const rm32 = await AutoModelForSequenceClassification.fromPretrained(bf16.dir, { numLabels: 1 });
    const inputs = { inputIds: [[3, 5, 7, 9]], attentionMask: [[1, 1, 1, 1]] };
    const head32 = rm32.namedParameters().get("score.weight")!.dataSync() as Float32Array;
    const head16 = rm16.namedParameters().get("score.weight")!.dataSync() as Float32Array;
    const { float32ToBf16, bf16ToFloat32 } = await import("@prefkit/models");
    expect(Array.from(head16)).toEqual(Array.from(bf16ToFloat32(float32ToBf16(head32))));
    tf.tidy(() =>
      rm32
        .namedParameters()
        .get("score.weight")!
        .assign(tf.tensor(head16, [1, head16.length])),
    );
    const a = tf.tidy(() => rm16.forward(inputs).logits.dataSync()[0]!);
    const b = tf.tidy(() => rm32.forward(inputs).logits.dataSync()[0]!);
    expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b)));
    rm16.dispose();
    rm32.dispose();
  });
});
