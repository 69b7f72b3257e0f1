// `prefkit kto|orpo|cpo` end to end on stories260K: checkpoints, metrics.jsonl with each method's TRL metrics,
// a report with its charts, and a model card naming the method and its paper.
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, sharedPath } from "../../../test/helpers/shared.js";
import { prefkit } from "./cli-helpers.js";

const model = sharedPath("assets/stories260K");
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "prefkit-cli-methods-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CASES = [
  {
    method: "kto",
    flags: ["--beta", "0.2"],
    metrics: ["kl", "rewards/chosen", "logps/chosen"],
    chart: "kl.png",
    paper: "2402.01306",
  },
  {
    method: "orpo",
    flags: [],
    metrics: ["nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/margins"],
    chart: "odds_ratio.png",
    paper: "2403.07691",
  },
  {
    method: "cpo",
    flags: ["--loss-type", "simpo", "--cpo-alpha", "0"],
    metrics: ["nll_loss", "rewards/accuracies"],
    chart: "reward_accuracies.png",
    paper: "2401.08417",
  },
] as const;

describe("prefkit kto|orpo|cpo", () => {
  for (const c of CASES) {
    it.skipIf(!model)(`prefkit ${c.method} writes checkpoints, metrics.jsonl, a report and a model card`, async () => {
      const out = join(dir, c.method);
      const r = prefkit([
        c.method,
        "--model",
        model!,
        "--dataset",
        join(REPO_ROOT, "examples/data/tiny-prefs.jsonl"),
        "--output",
        out,
        "--max-steps",
        "2",
        "--save-steps",
        "1",
        "--logging-steps",
        "1",
        "--per-device-train-batch-size",
        "4",
        "--learning-rate",
        "1e-3",
        "--samples",
        "0",
        ...c.flags,
      ]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^${c.method}: 2 steps`));
      expect(await readdir(out)).toEqual(
        expect.arrayContaining([
          "checkpoint-1",
          "checkpoint-2",
          "metrics.jsonl",
          "report.html",
          "README.md",
          "model.safetensors",
        ]),
      );
      const lines = (await readFile(join(out, "metrics.jsonl"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines[0].step).toBe(1);
      for (const m of c.metrics) expect(Number.isFinite(lines[0][m]), `${c.method} logs ${m}`).toBe(true);
      expect(await readdir(join(out, "charts"))).toContain(c.chart);
      const card = await readFile(join(out, "README.md"), "utf8");
      expect(card).toContain(`- ${c.method}\n`);
      expect(card).toContain(c.paper);
    });
  }
});

describe("prefkit grpo|rloo", () => {
  for (const method of ["grpo", "rloo"] as const) {
    it.skipIf(!model)(
      `prefkit ${method} with --reward-funcs: per-function reward metrics and chart, a model card`,
      async () => {
        const out = join(dir, method);
        const prompts = join(dir, `${method}-prompts.jsonl`);
        const starts = ["Once upon a time,", "One day,", "In the park,", "At school,"];
        await writeFile(prompts, `${starts.map((p) => JSON.stringify({ prompt: p })).join("\n")}\n`);
        const r = prefkit([
          method,
          "--model",
          model!,
          "--dataset",
          prompts,
          "--reward-funcs",
          join(REPO_ROOT, "examples/grpo/rewards.mjs"),
          "--output",
          out,
          "--max-steps",
          "2",
          "--logging-steps",
          "1",
          "--per-device-train-batch-size",
          "4",
          "--num-generations",
          "4",
          "--max-completion-length",
          "6",
          "--learning-rate",
          "1e-3",
          "--samples",
          "0",
        ]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const lines = (await readFile(join(out, "metrics.jsonl"), "utf8"))
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l));
        for (const m of [
          "reward",
          "rewards/uses_happy/mean",
          "rewards/short_sentence/mean",
          "completions/mean_length",
        ]) {
          expect(Number.isFinite(lines[0][m]), `${method} logs ${m}`).toBe(true);
        }
        expect(await readdir(join(out, "charts"))).toContain("reward_functions.png");
        const card = await readFile(join(out, "README.md"), "utf8");
        expect(card).toContain(`- ${method}\n`);
        expect(card).toContain(method === "grpo" ? "2402.03300" : "2402.14740");
        // A missing module is a one-line config error, exit 2.
        const bad = prefkit([method, "--model", model!, "--dataset", prompts, "--output", join(dir, `${method}-bad`)]);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/--reward-funcs/);
      },
    );
  }
});
