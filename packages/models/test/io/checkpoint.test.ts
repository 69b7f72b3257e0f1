import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "@prefkit/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedPath } from "../../../../test/helpers/shared.js";
import { loadCheckpointWeights, readSafetensors, writeJsonAtomic, writeSafetensors } from "../../src/io/index.js";
import { asyncErrorOf, randomData, tempDir } from "./helpers.js";

describe("loadCheckpointWeights", () => {
  let root: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => ({ dir: root, cleanup } = await tempDir()));
  afterAll(() => cleanup());

  const embed = randomData(12, 1);
  const norm = randomData(3, 2);
  const head = randomData(12, 3);

  async function sharded(name: string, weightMap?: Record<string, string>): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir);
    await writeSafetensors(
      join(dir, "model-00001-of-00002.safetensors"),
      { "model.embed_tokens.weight": { shape: [4, 3], data: embed }, "model.norm.weight": { shape: [3], data: norm } },
      { format: "pt" },
    );
    await writeSafetensors(
      join(dir, "model-00002-of-00002.safetensors"),
      { "lm_head.weight": { shape: [4, 3], data: head, dtype: "BF16" } },
      { format: "pt", shard: "2" },
    );
    await writeJsonAtomic(join(dir, "model.safetensors.index.json"), {
      metadata: { total_size: 4 * 12 + 4 * 3 + 2 * 12 },
      weight_map: weightMap ?? {
        "lm_head.weight": "model-00002-of-00002.safetensors",
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00001-of-00002.safetensors",
      },
    });
    return dir;
  }

  it("merges the shards listed by model.safetensors.index.json, keeping metadata", async () => {
    const dir = await sharded("ok");
    const weights = await loadCheckpointWeights(dir);
    expect([...weights.tensors.keys()].sort()).toEqual([
      "lm_head.weight",
      "model.embed_tokens.weight",
      "model.norm.weight",
    ]);
    expect(weights.tensors.get("model.embed_tokens.weight")!.data).toEqual(embed);
    expect(weights.tensors.get("lm_head.weight")!.dtype).toBe("BF16");
    expect(weights.tensors.get("lm_head.weight")!.shape).toEqual([4, 3]);
    expect(weights.metadata).toEqual({ format: "pt", shard: "2" });
  });

  it("prefers model.safetensors, and reads a .safetensors path directly", async () => {
    const dir = await sharded("both");
    await writeSafetensors(join(dir, "model.safetensors"), { only: { shape: [1], data: new Float32Array([7]) } });
    expect([...(await loadCheckpointWeights(dir)).tensors.keys()]).toEqual(["only"]);
    const direct = await loadCheckpointWeights(join(dir, "model-00002-of-00002.safetensors"));
    expect([...direct.tensors.keys()]).toEqual(["lm_head.weight"]);
  });

  it("names the shard and tensor when the index and the shards disagree", async () => {
    const dir = await sharded("missing", {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00001-of-00002.safetensors",
      "lm_head.weight": "model-00002-of-00002.safetensors",
      "model.layers.0.mlp.up_proj.weight": "model-00002-of-00002.safetensors",
    });
    const e = await asyncErrorOf(() => loadCheckpointWeights(dir), CheckpointError);
    expect(e.tensor).toBe("model.layers.0.mlp.up_proj.weight");
    expect(e.message).toContain(join(dir, "model-00002-of-00002.safetensors"));
    expect(e.message).toMatch(/not in its shard/);
  });

  it("rejects a missing shard, a duplicated tensor, a path-escaping shard and a bad index", async () => {
    const gone = await sharded("gone", { x: "model-00003-of-00003.safetensors" });
    expect((await asyncErrorOf(() => loadCheckpointWeights(gone), CheckpointError)).message).toContain(
      "model-00003-of-00003.safetensors",
    );

    const dup = await sharded("dup");
    await writeSafetensors(join(dup, "model-00002-of-00002.safetensors"), {
      "model.norm.weight": { shape: [3], data: norm },
    });
    const e = await asyncErrorOf(() => loadCheckpointWeights(dup), CheckpointError);
    expect(e.tensor).toBe("model.norm.weight");
    expect(e.message).toMatch(/two shards/);

    const escaping = await sharded("escape", { x: "../ok/model-00001-of-00002.safetensors" });
    expect((await asyncErrorOf(() => loadCheckpointWeights(escaping), CheckpointError)).field).toBe("weight_map");

    const badJson = join(root, "badjson");
    await mkdir(badJson);
    await writeFile(join(badJson, "model.safetensors.index.json"), "{ weight_map: ");
    const e2 = await asyncErrorOf(() => loadCheckpointWeights(badJson), CheckpointError);
    expect(e2.message).toContain(join(badJson, "model.safetensors.index.json"));
    expect(e2.message).toMatch(/not valid JSON/);
  });

  it("names the directory when there are no weights", async () => {
    const empty = join(root, "empty");
    await mkdir(empty);
    const e = await asyncErrorOf(() => loadCheckpointWeights(empty), CheckpointError);
    expect(e.file).toBe(empty);
    expect((await asyncErrorOf(() => loadCheckpointWeights(join(root, "nope")), CheckpointError)).file).toBe(
      join(root, "nope"),
    );
  });

  const golden = sharedPath("fixtures/hf-golden/smollm_tied");
  it.skipIf(!golden)("loads a real HF directory", async () => {
    const weights = await loadCheckpointWeights(golden!);
    const direct = await readSafetensors(join(golden!, "model.safetensors"));
    expect([...weights.tensors.keys()]).toEqual([...direct.tensors.keys()]);
    expect(weights.tensors.get("model.embed_tokens.weight")!.shape).toEqual([288, 96]);
  });
});
