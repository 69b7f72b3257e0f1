/**
 * The CLI's tool commands: `generate`, `eval`, `report`, `env`.
 * @module
 */
import { readFile } from "node:fs/promises";
import { ConfigError, engineInfo } from "@prefkit/core";
import { AutoModelForCausalLM, AutoTokenizer } from "@prefkit/models";
import { Command } from "commander";
import { evaluatePreferences } from "../eval/preferences.js";
import { generate } from "../eval/generate.js";
import { logProbHistogram } from "../eval/logprob-histogram.js";
import { frameworkVersions } from "../model-card.js";
import { writeReport } from "../report/write-report.js";
import { addEngineOptions, type CliIo, startEngine } from "./common.js";

export function generateCommand(io: CliIo): Command {
  const cmd = new Command("generate").description("complete prompts with a model (greedy unless --temperature > 0)");
  cmd
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .requiredOption("--prompt <text...>", "prompt(s) to complete")
    .option("--max-new-tokens <n>", "new tokens per prompt", "40")
    .option("--temperature <t>", "0 is greedy; > 0 samples", "0")
    .option("--seed <n>", "sampler seed", "42")
    .option("--json", "print JSON instead of text");
  addEngineOptions(cmd);
  cmd.action(async (opts: Record<string, unknown>) => {
    const maxNewTokens = Number(opts["maxNewTokens"]);
    const temperature = Number(opts["temperature"]);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
      throw new ConfigError(`must be an integer >= 1, got ${JSON.stringify(opts["maxNewTokens"])}`, {
        field: "maxNewTokens",
      });
    }
    if (!(temperature >= 0)) {
      throw new ConfigError(`must be a number >= 0, got ${JSON.stringify(opts["temperature"])}`, {
        field: "temperature",
      });
    }
    await startEngine(opts);
    const model = await AutoModelForCausalLM.fromPretrained(String(opts["model"]));
    const tokenizer = await AutoTokenizer.fromPretrained(String(opts["model"]));
    try {
      const gens = await generate(model, tokenizer, opts["prompt"] as string[], {
        maxNewTokens,
        temperature,
        seed: Number(opts["seed"]),
      });
      if (opts["json"]) io.stdout.write(`${JSON.stringify(gens, null, 2)}\n`);
      else for (const g of gens) io.stdout.write(`${g.prompt}${g.completion}\n`);
    } finally {
      model.dispose();
    }
  });
  return cmd;
}

export function evalCommand(io: CliIo): Command {
  const cmd = new Command("eval").description(
    "reward accuracy and margins of a policy against a reference (DPO implicit rewards), and/or a log-prob histogram",
  );
  cmd
    .requiredOption("--model <dir>", "the policy (Hugging Face model directory)")
    .option("--ref-model <dir>", "the reference model (for --dataset)")
    .option("--dataset <file>", "preference pairs (JSON/JSONL) to score")
    .option("--beta <b>", "β of the implicit reward", "0.1")
    .option("--max-length <n>", "truncate prompt + completion to this many tokens", "1024")
    .option("--texts <name=file...>", "text files (one text per non-empty line) for the log-prob histogram")
    .option("--out-dir <dir>", "where the histogram PNG/SVG go", ".");
  addEngineOptions(cmd);
  cmd.action(async (opts: Record<string, unknown>) => {
    if (!opts["dataset"] && !opts["texts"]) {
      throw new ConfigError("give --dataset (with --ref-model) and/or --texts", { field: "dataset" });
    }
    if (opts["dataset"] && !opts["refModel"]) {
      throw new ConfigError("required with --dataset: the reference model", { field: "refModel" });
    }
    const beta = Number(opts["beta"]);
    if (!(beta > 0))
      throw new ConfigError(`must be a number > 0, got ${JSON.stringify(opts["beta"])}`, { field: "beta" });
    await startEngine(opts);
    const model = await AutoModelForCausalLM.fromPretrained(String(opts["model"]));
    const tokenizer = await AutoTokenizer.fromPretrained(String(opts["model"]));
    const out: Record<string, unknown> = {};
    try {
      if (opts["dataset"]) {
        const ref = await AutoModelForCausalLM.fromPretrained(String(opts["refModel"]));
        try {
          const r = await evaluatePreferences(model, ref, String(opts["dataset"]), {
            tokenizer,
            beta,
            maxLength: Number(opts["maxLength"]),
          });
          out["preferences"] = {
            accuracy: r.accuracy,
            meanMargin: r.meanMargin,
            numPairs: r.numPairs,
            metrics: r.metrics,
          };
        } finally {
          ref.dispose();
        }
      }
      if (opts["texts"]) {
        const datasets = [];
        for (const spec of opts["texts"] as string[]) {
          const eq = spec.indexOf("=");
          if (eq <= 0) throw new ConfigError(`expected name=file, got ${JSON.stringify(spec)}`, { field: "texts" });
          const text = await readFile(spec.slice(eq + 1), "utf8");
          datasets.push({ name: spec.slice(0, eq), texts: text.split("\n").filter((l) => l.trim() !== "") });
        }
        const h = await logProbHistogram(model, tokenizer, datasets, { outDir: String(opts["outDir"]) });
        out["logProbs"] = { means: h.means, png: h.png, svg: h.svg };
      }
    } finally {
      model.dispose();
    }
    io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  });
  return cmd;
}

export function reportCommand(io: CliIo): Command {
  return new Command("report")
    .description("write report.html and PNG/SVG charts for a run directory (from metrics.jsonl)")
    .argument("<runDir>", "the run's output directory")
    .action(async (runDir: string) => {
      const r = await writeReport(runDir);
      io.stdout.write(`${r.html}\n${r.charts.map((c) => `${c.png}\n`).join("")}`);
    });
}

export function envCommand(io: CliIo): Command {
  const cmd = new Command("env").description("print the engine (backend, threads, kernels) and versions as JSON");
  addEngineOptions(cmd);
  return cmd.action(async (opts: Record<string, unknown>) => {
    await startEngine(opts);
    io.stdout.write(`${JSON.stringify({ ...engineInfo(), versions: frameworkVersions() }, null, 2)}\n`);
  });
}
