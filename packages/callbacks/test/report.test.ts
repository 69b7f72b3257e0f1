import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { modelCardText, ReportCallback, writeModelCard, writeReport } from "../src/index.js";
import { harness, isPng } from "./helpers.js";

let dir = "";
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const RECORDS = [
  {
    step: 1,
    loss: 0.6925,
    "rewards/chosen": 0,
    "rewards/rejected": 0,
    "rewards/margins": 0,
    "rewards/accuracies": 0,
    learning_rate: 1e-6,
    grad_norm: 3,
    epoch: 0.5,
  },
  {
    step: 2,
    loss: 0.61,
    "rewards/chosen": 0.1,
    "rewards/rejected": -0.2,
    "rewards/margins": 0.3,
    "rewards/accuracies": 1,
    learning_rate: 5e-7,
    grad_norm: 2,
    epoch: 1,
  },
  { step: 2, eval_loss: 0.65, "eval_rewards/margins": 0.2, epoch: 1 },
];

describe("writeReport", () => {
  it("writes report.html and a valid PNG + SVG per chart with data, from metrics.jsonl", async () => {
    dir = await mkdtemp(join(tmpdir(), "pk-report-"));
    await writeFile(join(dir, "metrics.jsonl"), RECORDS.map((r) => JSON.stringify(r)).join("\n"));
    await writeFile(
      join(dir, "samples.json"),
      JSON.stringify([{ prompt: "Once upon a <time>", before: "a cat", after: "a dog & a cat" }]),
    );
    const r = await writeReport(dir);
    expect(r.charts.map((c) => c.name)).toEqual(["loss", "rewards", "reward_accuracies", "learning_rate", "grad_norm"]);
    expect(r.charts[0]!.series).toEqual(["loss", "eval_loss"]);
    expect(r.records).toBe(3);
    expect(r.samples).toBe(1);
    const html = await readFile(r.html, "utf8");
    for (const c of r.charts) {
      const png = new Uint8Array(await readFile(c.png));
      expect(isPng(png)).toBe(true);
      expect((await stat(c.png)).size).toBeGreaterThan(1000);
      expect(await readFile(c.svg, "utf8")).toMatch(/^<svg[\s\S]*<\/svg>$/);
      expect(html).toContain(`src="charts/${c.name}.png"`);
    }
    expect(html).toContain("<pre>Once upon a &lt;time&gt;</pre>");
    expect(html).toContain("<pre>a dog &amp; a cat</pre>");
    // No PPO metrics were logged, so no PPO charts.
    expect(html).not.toContain("charts/kl.png");
  });

  it("draws PPO charts from objective/* metrics, and ReportCallback writes from the log history", async () => {
    dir = await mkdtemp(join(tmpdir(), "pk-report-"));
    const cb = new ReportCallback();
    const h = harness([cb], { outputDir: dir });
    h.state.logHistory.push(
      { step: 1, "objective/kl": 0, "objective/scores": 0.1, "objective/rlhf_reward": 0.1, lr: 3e-6, loss: 1 },
      { step: 2, "objective/kl": 0.02, "objective/scores": 0.3, "objective/rlhf_reward": 0.28, lr: 1.5e-6, loss: 0.8 },
    );
    await h.end();
    expect(cb.result!.charts.map((c) => c.name)).toEqual(["loss", "kl", "scores", "learning_rate"]);
    expect(cb.result!.charts.find((c) => c.name === "learning_rate")!.series).toEqual(["lr"]);
  });
});

describe("model card", () => {
  it("has TRL's front matter and sections", async () => {
    dir = await mkdtemp(join(tmpdir(), "pk-card-"));
    const path = await writeModelCard(join(dir, "my-dpo"), {
      baseModel: "HuggingFaceTB/SmolLM2-135M-Instruct",
      method: "dpo",
      dataset: "trl-lib/ultrafeedback_binarized",
      config: { beta: 0.1, lossType: ["sigmoid"] },
      metrics: { loss: 0.5, "rewards/margins": 1.25 },
      frameworkVersions: { prefkit: "0.1.0", "TensorFlow.js": "4.22.0" },
    });
    const text = await readFile(path, "utf8");
    expect(
      text.startsWith(
        [
          "---",
          'base_model: "HuggingFaceTB/SmolLM2-135M-Instruct"',
          "library_name: prefkit",
          'model_name: "my-dpo"',
          "datasets:",
          '- "trl-lib/ultrafeedback_binarized"',
          "tags:",
          "- generated_from_trainer",
          "- prefkit",
          "- trl",
          "- dpo",
          "licence: license",
          "---",
          "",
          "# Model Card for my-dpo",
        ].join("\n"),
      ),
    ).toBe(true);
    for (const s of [
      "## Quick start",
      "## Training procedure",
      "### Training hyperparameters",
      "### Final metrics",
      "### Framework versions",
      "## Citations",
    ]) {
      expect(text).toContain(`\n${s}\n`);
    }
    expect(text).toContain('| lossType | ["sigmoid"] |');
    expect(text).toContain("| rewards/margins | 1.25 |");
    expect(text).toContain("- TensorFlow.js: 4.22.0");
    expect(text).toContain("https://huggingface.co/papers/2305.18290");
    expect(modelCardText({ baseModel: "b", method: "reward" }, "m")).toContain("- reward-trainer\n");
  });
});
