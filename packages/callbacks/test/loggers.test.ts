import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CsvLogger, JsonlLogger, readMetricsJsonl } from "../src/index.js";
import { harness } from "./helpers.js";

let dir = "";
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("JsonlLogger", () => {
  it("writes one record per log event with the TRL names, NaN as null, and trims on resume", async () => {
    dir = await mkdtemp(join(tmpdir(), "pk-jsonl-"));
    const h = harness([new JsonlLogger()], { outputDir: dir });
    await h.begin();
    await h.step({ loss: 0.6925, "rewards/margins": 0.5, learning_rate: 1e-6, epoch: 0.1 });
    await h.step({ loss: Number.NaN, grad_norm: 2 });
    await h.log({ eval_loss: 0.5, "eval_rewards/accuracies": 0.75, epoch: 0.2 });
    const text = await readFile(join(dir, "metrics.jsonl"), "utf8");
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0]!)).toEqual({
      step: 1,
      loss: 0.6925,
      "rewards/margins": 0.5,
      learning_rate: 1e-6,
      epoch: 0.1,
    });
    expect(JSON.parse(lines[1]!)).toEqual({ step: 2, loss: null, grad_norm: 2 });
    const recs = await readMetricsJsonl(join(dir, "metrics.jsonl"));
    expect(recs[1]!.loss).toBeNaN();
    expect(recs[2]).toEqual({ step: 2, eval_loss: 0.5, "eval_rewards/accuracies": 0.75, epoch: 0.2 });

    // A resumed run from step 1 keeps step 1 only, then appends.
    const h2 = harness([new JsonlLogger()], { outputDir: dir });
    h2.state.globalStep = 1;
    await h2.begin();
    await h2.step({ loss: 0.4 });
    const again = await readMetricsJsonl(join(dir, "metrics.jsonl"));
    expect(again.map((r) => [r.step, r["loss"]])).toEqual([
      [1, 0.6925],
      [2, 0.4],
    ]);
  });

  it("names file and line of a malformed record", async () => {
    dir = await mkdtemp(join(tmpdir(), "pk-jsonl-"));
    const file = join(dir, "metrics.jsonl");
    await (await import("node:fs/promises")).writeFile(file, '{"step":1,"loss":1}\n{oops\n');
    await expect(readMetricsJsonl(file)).rejects.toThrow(`${file}, row 2: not valid JSON`);
  });
});

describe("CsvLogger", () => {
  it("adds columns as they appear and leaves missing cells empty", async () => {
    dir = await mkdtemp(join(tmpdir(), "pk-csv-"));
    const h = harness([new CsvLogger()], { outputDir: dir });
    await h.begin();
    await h.step({ loss: 0.5, epoch: 0.5 });
    await h.log({ eval_loss: 0.25, epoch: 0.5 });
    const text = await readFile(join(dir, "metrics.csv"), "utf8");
    expect(text).toBe("step,epoch,loss,eval_loss\n1,0.5,0.5,\n1,0.5,,0.25\n");
  });
});
