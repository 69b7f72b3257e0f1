import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSafetensors, writeSafetensors } from "../../src/checkpoint/safetensors.js";
import { loadModelWeights } from "../../src/checkpoint/training-checkpoint.js";
import { tf } from "../../src/engine/tf.js";
import { CheckpointError } from "../../src/errors/index.js";
import { arrayBatchSource } from "../../src/trainer/batch-source.js";
import { makeRows, TinyLM, TinyTrainer } from "../trainer/tiny-lm.js";

let root: string;
beforeAll(async () => {
  await tf.setBackend("cpu");
  root = await mkdtemp(join(tmpdir(), "prefkit-ckpt-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("checkpoint files", () => {
  it("safetensors round-trips F32 and I32 and rejects truncated files with the file name", async () => {
    const file = join(root, "t.safetensors");
    const tensors = new Map([
      ["a", { shape: [2, 2], data: new Float32Array([1, -2.5, 3e-8, 4]) }],
      ["b/step", { shape: [], data: new Int32Array([7]) }],
    ]);
    await writeSafetensors(file, tensors, { format: "pt" });
    const back = await readSafetensors(file);
    expect(back.get("a")).toEqual(tensors.get("a"));
    expect(back.get("b/step")).toEqual(tensors.get("b/step"));
    await writeFile(join(root, "bad.safetensors"), Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    await expect(readSafetensors(join(root, "bad.safetensors"))).rejects.toThrow(/bad.safetensors: header length 200/);
  });

  it("refuses to resume when a trainable weight is missing, and when there is no checkpoint", async () => {
    const model = new TinyLM(1);
    const dir = join(root, "partial");
    await model.savePretrained(dir);
    const only = await readSafetensors(join(dir, "model.safetensors"));
    only.delete("lm_head.weight");
    await writeSafetensors(join(dir, "model.safetensors"), only);
    const err = await loadModelWeights(model, dir).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.tensor).toBe("lm_head.weight");
    const t = new TinyTrainer(
      { outputDir: join(root, "empty"), maxSteps: 1 },
      model,
      arrayBatchSource(makeRows(2), { batchSize: 2, collate: (r) => r }),
    );
    await expect(t.train({ resumeFromCheckpoint: true })).rejects.toThrow(/no checkpoint found/);
    model.dispose();
  });
});
