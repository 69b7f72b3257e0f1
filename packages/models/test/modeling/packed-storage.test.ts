/**
 * The fused decoder's pack as the only storage of a 16-bit frozen weight (`Decoder.packedStorage`): for
 * 7B-shaped models a bf16 weight's bits plus its pack would double the frozen weights' memory, so once the
 * pack is made the bits are dropped and unpacked from the pack (exactly) when something else needs them:
 * saving, the tfjs fall-back, LoRA merging, a repack for another compute type.
 */
import { readdir, readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initEngine, nativeBlasPlugin, Rng, shutdownEngine, tf } from "@prefkit/core";
import {
  AutoModelForCausalLM,
  HalfPrecisionLinear,
  type PeftModelForCausalLM,
  type PreTrainedModelForCausalLM,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activeDecoderAddon } from "../../src/modeling/native/addon.js";
import { cachedPackInfo } from "../../src/modeling/native/packs.js";
import { FAMILIES, randomIds, randomModel } from "../generation/helpers.js";
import { completionValueAndGrads, loraOverBf16 } from "./bf16-helpers.js";
import { skipWithoutNativeDecoder } from "./native-helpers.js";

const SKIP = skipWithoutNativeDecoder("packed storage of 16-bit weights");
const CONFIG = FAMILIES["llama_gqa"]!;
const VOCAB = Number(CONFIG["vocab_size"]);

let root: string;
let dir: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "prefkit-packed-storage-"));
  dir = join(root, "bf16");
});
afterAll(async () => {
  shutdownEngine();
  await rm(root, { recursive: true, force: true });
});

/** Every 16-bit projection of the model (q … down per layer, and the LM head). */
function projections(model: PreTrainedModelForCausalLM): HalfPrecisionLinear[] {
  const out: HalfPrecisionLinear[] = [];
  for (const m of model.linearModules().values()) {
    const plain = (m as { base?: unknown }).base ?? m;
    if (plain instanceof HalfPrecisionLinear) out.push(plain);
  }
  return out;
}

/** Every file of a directory, by name, as bytes. */
async function filesOf(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(path)).sort()) out.set(name, await readFile(join(path, name)));
  return out;
}

const loraModel = () => loraOverBf16(dir, 4, 5);
const valueAndGrads = (peft: PeftModelForCausalLM, ids: number[][]) => completionValueAndGrads(peft, ids, [1, -2, 0.5]);

function expectClose(a: ReturnType<typeof valueAndGrads>, b: ReturnType<typeof valueAndGrads>, rel: number) {
  expect(Math.abs(a.value - b.value)).toBeLessThanOrEqual(rel * Math.abs(b.value));
  for (let i = 0; i < b.grads.length; i++) {
    const scale = Math.max(...b.grads[i]!.map(Math.abs));
    let worst = 0;
    for (let j = 0; j < b.grads[i]!.length; j++) worst = Math.max(worst, Math.abs(a.grads[i]![j]! - b.grads[i]![j]!));
    expect(worst, `gradient ${i}`).toBeLessThanOrEqual(rel * scale);
  }
}

describe.skipIf(SKIP)("the pack as the only storage of 16-bit frozen weights", () => {
  beforeAll(async () => {
    await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
    const source = randomModel(CONFIG, 8);
    await source.savePretrained(dir, { dtype: "BF16" });
    source.dispose();
  });

  it("decoderUnpackWeight gives back a bf16 pack's bits exactly (both compute types, ragged shapes, ±0, ±inf, subnormals)", () => {
    const { addon } = activeDecoderAddon()!;
    const rng = new Rng(3);
    const special = [0x0000, 0x8000, 0x7f80, 0xff80, 0x0001, 0x807f, 0x7f7f, 0xff7f, 0x3f80];
    for (const [rows, cols] of [
      [1, 1],
      [7, 13],
      [33, 65],
      [64, 48],
      [130, 17],
    ] as const) {
      const bits = new Uint16Array(rows * cols);
      for (let i = 0; i < bits.length; i++) {
        // Any finite or infinite bf16 pattern (exponent 0xff with a mantissa would be a NaN).
        let b = rng.int(0x10000);
        if ((b & 0x7f80) === 0x7f80) b &= 0xff80;
        bits[i] = i < special.length ? special[i]! : b;
      }
      for (const compute of ["float32", "bfloat16"] as const) {
        const handle = addon.decoderPackWeight(bits, rows, cols, "bfloat16", compute);
        const back = addon.decoderUnpackWeight(handle);
        expect(back).toBeInstanceOf(Uint16Array);
        expect(back, `[${rows}, ${cols}] ${compute}`).toEqual(bits);
      }
    }
    const f16 = addon.decoderPackWeight(new Uint16Array(6), 2, 3, "float16", "float32");
    expect(() => addon.decoderUnpackWeight(f16)).toThrow(/expects the handle of a packed bfloat16 weight/);
    const f32 = addon.decoderPackWeight(new Float32Array(6), 2, 3, "float32", "bfloat16");
    expect(() => addon.decoderUnpackWeight(f32)).toThrow(/expects the handle of a packed bfloat16 weight/);
  });

  it("a LoRA model over bf16 weights drops the bits once packed: the same values and gradients, 2 bytes per weight, the tfjs fall-back, bf16 compute and merging still work", async () => {
    const peft = await loraModel();
    const base = peft.baseModel;
    const layers = projections(base);
    expect(layers).toHaveLength(2 * 7 + 1);
    const original = layers.map((p) => p.bits.slice());
    const ids = randomIds(3, 9, VOCAB, 6);
    const kept = valueAndGrads(peft, ids);
    base.computeDtype = "bfloat16";
    const halfKept = valueAndGrads(peft, ids);
    base.computeDtype = "float32";
    expect(layers.every((p) => !p.weight.bitsReleased)).toBe(true);

    base.decoder.packedStorage = true;
    const packed = valueAndGrads(peft, ids);
    // The same packs, the same products: bit for bit.
    expect(packed.value).toBe(kept.value);
    for (let i = 0; i < kept.grads.length; i++) expect(packed.grads[i]).toEqual(kept.grads[i]);
    expect(layers.every((p) => p.weight.bitsReleased === (p.name !== "lm_head"))).toBe(true);
    // What the weights cost now: their packs, 2 bytes per element plus the padding of the last panel of
    // outputs (at most 47 rows here: 3 zmm registers of fp32 lanes; under 1% for 7B shapes).
    const { addon } = activeDecoderAddon()!;
    for (const p of layers) {
      const info = cachedPackInfo(addon, p.weight.storageKey)!;
      expect(info).toMatchObject({ dtype: "bfloat16", compute: "float32", rows: p.outFeatures, cols: p.inFeatures });
      expect(info.bytes, p.name).toBeGreaterThanOrEqual(2 * p.outFeatures * p.inFeatures);
      expect(info.bytes, p.name).toBeLessThanOrEqual(2 * (p.outFeatures + 47) * p.inFeatures);
    }
    // The bits come back exactly, on demand, without becoming the storage again.
    for (const [i, p] of layers.entries()) expect(p.bits, p.name).toEqual(original[i]);
    expect(layers.every((p) => p.weight.bitsReleased === (p.name !== "lm_head"))).toBe(true);

    // The tfjs ops upcast from the unpacked bits.
    base.decoder.useNativeDecoder = false;
    expectClose(valueAndGrads(peft, ids), kept, 1e-5);
    base.decoder.useNativeDecoder = true;

    // Another compute type repacks from the unpacked bits: the same bf16 products as from the kept bits,
    // and back to float32 the same values again.
    base.computeDtype = "bfloat16";
    const half = valueAndGrads(peft, ids);
    expect(half.value).not.toBe(kept.value);
    expect(half.value).toBe(halfKept.value);
    for (let i = 0; i < kept.grads.length; i++) expect(half.grads[i]).toEqual(halfKept.grads[i]);
    expect(layers.every((p) => p.weight.bitsReleased === (p.name !== "lm_head"))).toBe(true);
    base.computeDtype = "float32";
    expect(valueAndGrads(peft, ids).value).toBe(kept.value);
    for (const [i, p] of layers.entries()) expect(p.bits, p.name).toEqual(original[i]);

    // Merging LoRA reads the unpacked bits and stores the merged weights as new (held) bits: the same
    // bits as merging the same adapters into a model that kept its bits.
    const twin = await loraModel();
    const expected = projections(twin.mergeAndUnload()).map((p) => p.bits);
    const merged = peft.mergeAndUnload();
    const got = projections(merged);
    expect(got.every((p) => !p.weight.bitsReleased)).toBe(true);
    for (const [i, p] of got.entries()) expect(p.bits, p.name).toEqual(expected[i]);
    expect(got.some((p, i) => p.bits.some((b, j) => b !== original[i]![j]))).toBe(true);
    twin.baseModel.dispose();
    merged.dispose();
  });

  it("savePretrained after the bits were dropped writes byte-identical files; a frozen copy shares the packs", async () => {
    const base = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
    await base.savePretrained(join(root, "before"));
    const reference = base.frozenCopy();
    reference.decoder.packedStorage = true;
    const ids = randomIds(2, 7, VOCAB, 9);
    const labels = tf.tensor2d(
      ids.map((r) => [...r.slice(1), 0]),
      [2, 7],
      "int32",
    );
    const direct = reference.directTokenLogProbs({ inputIds: ids }, labels, {});
    expect(direct).toBeDefined();
    tf.dispose([direct!.logProbs, labels]);
    const dropped = projections(reference);
    expect(dropped.every((p) => p.weight.bitsReleased === (p.name !== "lm_head"))).toBe(true);
    // The copy shares the policy's storage (no second copy of the bits, no second pack).
    expect(projections(base).every((p) => p.weight.bitsReleased === (p.name !== "lm_head"))).toBe(true);
    await base.savePretrained(join(root, "after-base"));
    await reference.savePretrained(join(root, "after-reference"));
    const expected = await filesOf(join(root, "before"));
    expect(expected.get("model.safetensors")!.length).toBeGreaterThan(1000);
    for (const saved of ["after-base", "after-reference"]) {
      const files = await filesOf(join(root, saved));
      expect([...files.keys()]).toEqual([...expected.keys()]);
      for (const [name, bytes] of expected) expect(files.get(name)!.equals(bytes), `${saved}/${name}`).toBe(true);
    }
    reference.dispose();
    base.dispose();
  });
});
