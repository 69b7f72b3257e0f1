/**
 * Issue 15 item 1: `savePretrained` of a model loaded in 16 bits writes each weight in its dtype: an
 * untouched bf16 (f16) tensor byte for byte as it was read, a trained float32 master in F32 (never rounded
 * away), and never a non-finite weight; the save stays atomic and leaves everything else in the
 * directory alone.
 */
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckpointError, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  bf16ToFloat32,
  float32ToBf16,
  loadCheckpointWeights,
  type PreTrainedModelForCausalLM,
  readSafetensorsHeader,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileTree } from "../../../../test/helpers/files.js";
import { goldenFixtures, useBackend } from "./golden.js";

const fixtures = goldenFixtures();
const bf16 = fixtures.find((f) => f.name === "smollm_tied_bf16")!;
const bf16Bias = fixtures.find((f) => f.name === "qwen2_bias")!;
const f16 = fixtures.find((f) => f.name === "qwen3_qknorm")!;
const f32 = fixtures.find((f) => f.name === "mistral")!;

let scratch: string;
beforeAll(async () => {
  await useBackend("cpu");
  scratch = await mkdtemp(join(tmpdir(), "prefkit-load16-save-"));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Every tensor's dtype and raw bytes in `dir/model.safetensors`. */
async function tensorBytes(dir: string): Promise<Map<string, { dtype: string; bytes: Buffer }>> {
  const file = join(dir, "model.safetensors");
  const raw = await readFile(file);
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, { dtype: string; bytes: Buffer }>();
  for (const [name, e] of header.tensors) {
    out.set(name, {
      dtype: e.dtype,
      bytes: raw.subarray(header.dataStart + e.dataOffsets[0], header.dataStart + e.dataOffsets[1]),
    });
  }
  return out;
}

describe("savePretrained of a model loaded in 16 bits", () => {
  it.each([
    [bf16, "bfloat16"],
    [bf16Bias, "bfloat16"],
    [f16, "float16"],
  ] as const)("$0.name as $1: every tensor round-trips byte for byte, torch_dtype kept", async (fixture, dtype) => {
    const model = await AutoModelForCausalLM.fromPretrained(fixture.dir, { dtype });
    const out = join(scratch, `roundtrip-${fixture.name}`);
    await model.savePretrained(out);
    const before = await tensorBytes(fixture.dir);
    const after = await tensorBytes(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [name, t] of before) {
      expect(after.get(name)!.dtype, name).toBe(t.dtype);
      expect(after.get(name)!.bytes.equals(t.bytes), name).toBe(true);
    }
    const config = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(config.torch_dtype).toBe(dtype);
    // What was written loads back as the same 16-bit model.
    const again = await AutoModelForCausalLM.fromPretrained(out, { dtype: "auto" });
    expect(again.dtype).toBe(dtype);
    again.dispose();
    model.dispose();
  });

  it("a float32 checkpoint loaded as bf16 is written as its bf16 rounding", async () => {
    const model = await AutoModelForCausalLM.fromPretrained(f32.dir, { dtype: "bfloat16" });
    const out = join(scratch, "f32-as-bf16");
    await model.savePretrained(out);
    const original = (await loadCheckpointWeights(f32.dir)).tensors;
    for (const [name, t] of await tensorBytes(out)) {
      expect(t.dtype, name).toBe("BF16");
      const want = Buffer.from(float32ToBf16(original.get(name)!.data).buffer);
      expect(t.bytes.equals(want), name).toBe(true);
    }
    model.dispose();
  });

  it("trained weights are written in float32, untouched ones byte for byte; an explicit dtype applies to all", async () => {
    const model = await AutoModelForCausalLM.fromPretrained(bf16.dir, { dtype: "bfloat16" });
    const vars = model.trainableVariables(); // full fine-tuning: every weight gets its float32 master
    expect(model.halfPrecisionWeights().size).toBe(0);
    const changed = "model.layers.0.mlp.up_proj.weight";
    const norm = "model.layers.1.input_layernorm.weight";
    const params = model.namedParameters();
    for (const name of [changed, norm]) {
      const v = params.get(name)!;
      tf.tidy(() => v.assign(tf.add(v, 1e-3))); // not a bf16 value any more
    }
    expect(vars).toContain(params.get(changed));
    const out = join(scratch, "trained");
    await model.savePretrained(out);
    const before = await tensorBytes(bf16.dir);
    const after = await tensorBytes(out);
    for (const [name, t] of after) {
      if (name === changed || name === norm) {
        expect(t.dtype, name).toBe("F32");
        const saved = new Float32Array(new Uint8Array(t.bytes).buffer);
        expect(Array.from(saved)).toEqual(Array.from(params.get(name)!.dataSync()));
      } else {
        expect(t.dtype, name).toBe("BF16");
        expect(t.bytes.equals(before.get(name)!.bytes), name).toBe(true);
      }
    }
    expect(JSON.parse(await readFile(join(out, "config.json"), "utf8")).torch_dtype).toBe("bfloat16");
    // Reloaded in float32, the model is exactly the trained one.
    const reloaded = await AutoModelForCausalLM.fromPretrained(out);
    const ids = [[1, 2, 3, 4]];
    const a = tf.tidy(() => model.forward({ inputIds: ids }).logits.dataSync());
    const b = tf.tidy(() => reloaded.forward({ inputIds: ids }).logits.dataSync());
    expect(Array.from(b)).toEqual(Array.from(a));
    reloaded.dispose();
    // dtype "BF16" rounds everything (the user asked for it); "F32" upcasts exactly.
    const rounded = join(scratch, "trained-bf16");
    await model.savePretrained(rounded, { dtype: "BF16" });
    const r = (await tensorBytes(rounded)).get(changed)!;
    expect(r.dtype).toBe("BF16");
    expect(r.bytes.equals(Buffer.from(float32ToBf16(params.get(changed)!.dataSync() as Float32Array).buffer))).toBe(
      true,
    );
    const wide = join(scratch, "trained-f32");
    await model.savePretrained(wide, { dtype: "F32" });
    const w = (await tensorBytes(wide)).get("model.layers.1.mlp.down_proj.weight")!;
    expect(w.dtype).toBe("F32");
    const original = new Uint16Array(new Uint8Array(before.get("model.layers.1.mlp.down_proj.weight")!.bytes).buffer);
    expect(Array.from(new Float32Array(new Uint8Array(w.bytes).buffer))).toEqual(Array.from(bf16ToFloat32(original)));
    expect(JSON.parse(await readFile(join(wide, "config.json"), "utf8")).torch_dtype).toBe("float32");
    model.dispose();
  });

  it("refuses a non-finite 16-bit weight before writing anything, and keeps the directory's other files", async () => {
    const model: PreTrainedModelForCausalLM = await AutoModelForCausalLM.fromPretrained(bf16.dir, {
      dtype: "bfloat16",
    });
    const out = join(scratch, "nonfinite");
    await mkdir(out, { recursive: true });
    await writeFile(join(out, "notes.txt"), "keep me");
    await model.savePretrained(out);
    const tree = await fileTree(out);
    const w = model.halfPrecisionWeights().get("model.layers.0.self_attn.o_proj.weight")!;
    const values = w.float32();
    values[5] = Number.NaN;
    w.assign(values);
    let error: unknown;
    try {
      await model.savePretrained(out);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as CheckpointError).tensor).toBe("model.layers.0.self_attn.o_proj.weight");
    expect((error as CheckpointError).message).toContain("holds NaN at index 5: refusing to save non-finite weights");
    expect(await fileTree(out)).toEqual(tree);
    expect(readFileSync(join(out, "notes.txt"), "utf8")).toBe("keep me");
    model.dispose();
  });
});
