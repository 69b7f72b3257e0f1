import { join, resolve } from "node:path";
import {
  ConfigError,
  type Callback,
  type TrainOutput,
  DivergenceError,
  loadDataset,
  prepareOutputDir,
} from "@prefkit/core";
import * as losses from "@prefkit/losses";
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_SAFETENSORS_NAME,
  AutoModelForCausalLM,
  AutoModelForSequenceClassification,
  AutoTokenizer,
  CONFIG_NAME,
  GENERATION_CONFIG_NAME,
  SAFETENSORS_INDEX_NAME,
  SAFETENSORS_WEIGHTS_NAME,
  TOKENIZER_FILE_NAMES,
} from "@prefkit/models";
import { Command, Option } from "commander";
import { CsvLogger } from "../csv-logger.js";
import { EarlyStoppingCallback } from "../early-stopping.js";
import { generate } from "../eval/generate.js";
import { JsonlLogger } from "../jsonl-logger.js";
import { writeFileAtomic } from "../metrics-file.js";
import { frameworkVersions, ModelCardCallback, type TrainingMethod, writeModelCard } from "../model-card.js";
import { NanGuardCallback } from "../nan-guard.js";
import { ProgressCallback } from "../progress.js";
import { SAMPLES_FILE, type SampleGeneration, writeReport } from "../report/write-report.js";
import {
  type ConfigField,
  type ConfigKind,
  coerceField,
  configFields,
  formatDefault,
  readConfigFile,
} from "./config.js";
import { EXIT_CODES, EXIT_CODES_HELP } from "./exit-codes.js";
import { addEngineOptions, type CliIo, checkModelDir, fromModelDir, startEngine } from "./common.js";

export const TRAIN_COMMANDS: Record<ConfigKind, { method: TrainingMethod; summary: string }> = {
  sft: {
    method: "sft",
    summary: "supervised fine-tuning (TRL SFTTrainer) on text, messages or prompt-completion data",
  },
  dpo: { method: "dpo", summary: "Direct Preference Optimization (TRL DPOTrainer) on preference pairs" },
  reward: { method: "reward", summary: "train a reward model (TRL RewardTrainer) on preference pairs" },
  ppo: { method: "ppo", summary: "PPO with a KL penalty (TRL PPOTrainer)" },
  kto: { method: "kto", summary: "KTO on unpaired thumbs-up/down feedback (TRL KTOTrainer); pairs are unpaired" },
  orpo: { method: "orpo", summary: "ORPO: SFT plus an odds-ratio term, no reference model (TRL ORPOTrainer)" },
  cpo: { method: "cpo", summary: "CPO, SimPO (--loss-type simpo) or AlphaPO, no reference model (TRL CPOTrainer)" },
  grpo: { method: "grpo", summary: "GRPO with reward functions from --reward-funcs <module> (TRL GRPOTrainer)" },
  rloo: { method: "rloo", summary: "RLOO with reward functions from --reward-funcs <module> (TRL RLOOTrainer)" },
};

function fieldHelp(f: ConfigField): string {
  const allowed = f.allowed ? ` One of: ${f.allowed.join(", ")}.` : "";
  return `${f.doc}${allowed} [${f.type}] (default: ${formatDefault(f.default)})`;
}
/** Sample prompts longer than this (characters) are passed over: a sample is a glance, not a workload. */
const MAX_SAMPLE_PROMPT_CHARS = 2000;

/** Up to `n` string prompts from the first rows of a dataset file (rows with a short string `prompt`). */
export async function datasetPrompts(file: string, n: number): Promise<string[]> {
  const loaded = await loadDataset(file, { limit: Math.max(n * 4, 8) });
  return loaded.rows
    .map((r) => r.data["prompt"])
    .filter((p): p is string => typeof p === "string" && p.length <= MAX_SAMPLE_PROMPT_CHARS)
    .slice(0, n);
}

/**
 * What a training command writes at the top of its output directory when it ends: the final model (or
 * adapter) files, the model card, the report and samples. In a directory without an earlier run they
 * must not exist yet (see `prepareOutputDir`).
 */
const FINAL_FILES: readonly string[] = [
  CONFIG_NAME,
  GENERATION_CONFIG_NAME,
  SAFETENSORS_WEIGHTS_NAME,
  SAFETENSORS_INDEX_NAME,
  ADAPTER_CONFIG_NAME,
  ADAPTER_SAFETENSORS_NAME,
  ...TOKENIZER_FILE_NAMES,
  "README.md",
  "report.html",
  SAMPLES_FILE,
];

export function trainingCommand(kind: ConfigKind, io: CliIo, result: { code: number }): Command {
  const info = TRAIN_COMMANDS[kind];
  const fields = configFields(kind);
  const cmd = new Command(kind).description(info.summary);
  cmd
    .option("--model <dir>", "Hugging Face model directory (config.json, model.safetensors, tokenizer.json)")
    .option("--dataset <file>", "training data: JSON or JSONL(.gz) in TRL's formats")
    .option("--eval-dataset <file>", "evaluation data, same formats")
    .option("--config <file>", "config file (JSON or YAML); flags override it")
    .option("--output <dir>", "alias of --output-dir");
  addEngineOptions(cmd)
    .option("--no-progress", "no progress bar / progress lines")
    .option("--samples <n>", "prompts to generate from before and after training (sft, dpo), from the dataset", "2")
    .option("--sample-max-new-tokens <n>", "new tokens per sample generation", "24")
    .option("--early-stopping-patience <n>", "stop after this many evaluations without improvement")
    .option(
      "--nan-action <action>",
      "when loss/grad_norm is not finite: stop (exit 6), skip the step, or warn (logged values only: a non-finite training step is never applied and ends the run)",
      "stop",
    );
  if (kind === "ppo") {
    cmd.option(
      "--reward-model <dir>",
      "reward model directory (a sequence classifier with one label, e.g. from `prefkit reward`)",
    );
  }
  if (kind === "grpo" || kind === "rloo") {
    cmd.option(
      "--reward-funcs <module>",
      "an ES module whose named exports are the reward functions (completions, prompts, ids) → number | null per completion; each is logged under its export name",
    );
  }
  const fieldOptions: Array<[ConfigField, Option]> = [];
  for (const f of fields) {
    const isBool = /\bboolean\b/.test(f.type) && !/string/.test(f.type);
    const opt = new Option(`${f.flag} ${isBool ? "[value]" : "<value>"}`, fieldHelp(f));
    cmd.addOption(opt);
    fieldOptions.push([f, opt]);
  }
  cmd.addHelpText(
    "after",
    `\nEvery field can also be set in --config (camelCase or TRL's snake_case keys, plus model/dataset).\n\n${EXIT_CODES_HELP}`,
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    const fromFile = opts["config"] ? await readConfigFile(String(opts["config"]), kind) : { fields: {}, run: {} };
    const overrides: Record<string, unknown> = { ...fromFile.fields };
    for (const [f, opt] of fieldOptions) {
      const v = opts[opt.attributeName()];
      if (v !== undefined) overrides[f.name] = coerceField(f, v === true ? "true" : v);
    }
    if (opts["output"] !== undefined) overrides["outputDir"] = String(opts["output"]);
    const model = (opts["model"] as string | undefined) ?? fromFile.run["model"];
    const dataset = (opts["dataset"] as string | undefined) ?? fromFile.run["dataset"];
    const evalDataset = (opts["evalDataset"] as string | undefined) ?? fromFile.run["evalDataset"];
    const rewardModel = (opts["rewardModel"] as string | undefined) ?? fromFile.run["rewardModel"];
    const rewardFuncs = (opts["rewardFuncs"] as string | undefined) ?? fromFile.run["rewardFuncs"];
    if (!model)
      throw new ConfigError("required: the model directory (--model or `model` in --config)", { field: "model" });
    if (kind === "ppo" && !rewardModel) {
      throw new ConfigError("required: the reward model directory (--reward-model)", { field: "rewardModel" });
    }
    if ((kind === "grpo" || kind === "rloo") && !rewardFuncs) {
      throw new ConfigError("required: the reward functions module (--reward-funcs)", { field: "rewardFuncs" });
    }
    if (!dataset)
      throw new ConfigError("required: the training data (--dataset or `dataset` in --config)", { field: "dataset" });
    const nanAction = String(opts["nanAction"]);
    if (nanAction !== "stop" && nanAction !== "skip" && nanAction !== "warn") {
      throw new ConfigError(`must be "stop", "skip" or "warn", got ${JSON.stringify(nanAction)}`, {
        field: "nanAction",
      });
    }
    // Validate the whole config, the model paths and the output directory before loading anything heavy.
    const config = resolveConfig(kind, overrides);
    await checkModelDir(model, "model");
    if (rewardModel !== undefined && kind === "ppo") await checkModelDir(rewardModel, "rewardModel");
    await prepareOutputDir(String(config["outputDir"]), {
      resume: Boolean(config["resumeFromCheckpoint"]),
      overwriteOutputDir: config["overwriteOutputDir"] === true,
      modelDirs: kind === "ppo" && rewardModel !== undefined ? [model, rewardModel] : [model],
      finalFiles: FINAL_FILES,
    });
    await startEngine(opts);
    result.code = await runTraining(kind, {
      modelDir: model,
      rewardModelDir: rewardModel,
      rewardFuncsModule: rewardFuncs,
      dataset,
      evalDataset,
      config,
      overrides,
      io,
      progress: opts["progress"] !== false,
      samples: Number(opts["samples"]),
      sampleMaxNewTokens: Number(opts["sampleMaxNewTokens"]),
      patience: opts["earlyStoppingPatience"] === undefined ? undefined : Number(opts["earlyStoppingPatience"]),
      nanAction,
    });
  });
  return cmd;
}

/** Each config's resolver: fills TRL's defaults and validates, naming the bad field. */
const RESOLVERS: Record<ConfigKind, (overrides: Record<string, unknown>) => object> = {
  sft: losses.resolveSFTConfig,
  dpo: (o) => {
    const c = losses.resolveDPOConfig(o as losses.DPOConfigInput);
    losses.validateDPOConfig(c); // the CLI registers no user losses: only TRL's loss types are allowed
    return c;
  },
  reward: losses.resolveRewardConfig,
  ppo: losses.resolvePPOConfig,
  kto: losses.resolveKTOConfig,
  orpo: losses.resolveORPOConfig,
  cpo: losses.resolveCPOConfig,
  grpo: losses.resolveGRPOConfig,
  rloo: losses.resolveRLOOConfig,
};

/** Fill defaults and validate with the trainer's own resolver (which names the bad field). */
function resolveConfig(kind: ConfigKind, overrides: Record<string, unknown>): Record<string, unknown> {
  return RESOLVERS[kind](overrides) as Record<string, unknown>;
}

/** The causal-LM trainers by command (reward models train a classifier: see `runTraining`). */
const CAUSAL_TRAINERS = {
  sft: losses.SFTTrainer,
  dpo: losses.DPOTrainer,
  kto: losses.KTOTrainer,
  orpo: losses.ORPOTrainer,
  cpo: losses.CPOTrainer,
  ppo: losses.PPOTrainer,
  grpo: losses.GRPOTrainer,
  rloo: losses.RLOOTrainer,
} as const;

interface TrainingRun {
  modelDir: string;
  rewardModelDir: string | undefined;
  rewardFuncsModule: string | undefined;
  dataset: string;
  evalDataset: string | undefined;
  config: Record<string, unknown>;
  overrides: Record<string, unknown>;
  io: CliIo;
  progress: boolean;
  samples: number;
  sampleMaxNewTokens: number;
  patience: number | undefined;
  nanAction: "stop" | "skip" | "warn";
}

async function runTraining(kind: ConfigKind, run: TrainingRun): Promise<number> {
  const { io } = run;
  const outputDir = String(run.config["outputDir"]);
  const say = (line: string) => io.stdout.write(`${line}\n`);
  const warn = (line: string) => io.stderr.write(`${line}\n`);
  const tokenizer = await fromModelDir(() => AutoTokenizer.fromPretrained(run.modelDir));
  const nanGuard = new NanGuardCallback({ action: run.nanAction, report: warn });
  const callbacks: Callback<any>[] = [
    new JsonlLogger(),
    new CsvLogger(),
    nanGuard,
    new ModelCardCallback({ baseModel: run.modelDir, method: TRAIN_COMMANDS[kind].method, dataset: run.dataset }),
  ];
  if (run.progress) callbacks.unshift(new ProgressCallback({ stream: io.stdout, label: kind }));
  if (run.patience !== undefined) callbacks.push(new EarlyStoppingCallback({ patience: run.patience }));
  const common = {
    args: run.overrides,
    trainDataset: run.dataset,
    ...(run.evalDataset !== undefined ? { evalDataset: run.evalDataset } : {}),
    processingClass: tokenizer,
    callbacks,
    warn,
  };

  let samples: SampleGeneration[] = [];
  let saveModel: (dir: string) => Promise<void>;
  let trainer: { train(): Promise<TrainOutput>; state: { logHistory: Array<Record<string, number>> } };
  let dispose: () => void;
  if (kind === "reward") {
    const model = await fromModelDir(() =>
      AutoModelForSequenceClassification.fromPretrained(run.modelDir, {
        numLabels: 1,
        seed: Number(run.config["seed"]),
      }),
    );
    const t = new losses.RewardTrainer({ ...common, model, args: run.overrides as Partial<losses.RewardConfig> });
    trainer = t;
    saveModel = (dir) => model.savePretrained(dir);
    dispose = () => model.dispose();
  } else {
    const model = await fromModelDir(() => AutoModelForCausalLM.fromPretrained(run.modelDir));
    const prompts = run.samples > 0 ? await datasetPrompts(run.dataset, run.samples) : [];
    const sample = () => generate(model, tokenizer, prompts, { maxNewTokens: run.sampleMaxNewTokens });
    if (prompts.length > 0) samples = (await sample()).map((g) => ({ prompt: g.prompt, before: g.completion }));
    const rewardModel =
      kind === "ppo"
        ? await fromModelDir(() =>
            AutoModelForSequenceClassification.fromPretrained(run.rewardModelDir!, { numLabels: 1 }),
          )
        : undefined;
    const Trainer = CAUSAL_TRAINERS[kind as keyof typeof CAUSAL_TRAINERS] as unknown as new (
      options: Record<string, unknown>,
    ) => { train(): Promise<TrainOutput>; state: { logHistory: Array<Record<string, number>> }; dispose(): void };
    const rewardFuncs =
      run.rewardFuncsModule !== undefined
        ? Object.fromEntries(
            (await losses.loadRewardFunctions(run.rewardFuncsModule)).map(({ name, fn }) => [name, fn]),
          )
        : undefined;
    const t = new Trainer({
      ...common,
      model,
      ...(rewardModel ? { rewardModel } : {}),
      ...(rewardFuncs ? { rewardFuncs } : {}),
    });
    trainer = t;
    dispose = () => {
      t.dispose();
      rewardModel?.dispose();
      model.dispose();
    };
    saveModel = async (dir) => {
      await model.savePretrained(dir);
      if (prompts.length > 0) {
        const after = await sample();
        samples = samples.map((s, i) => ({ ...s, after: after[i]!.completion }));
      }
    };
  }
  try {
    let out: TrainOutput;
    try {
      out = await trainer.train();
    } catch (e) {
      // A diverged run saves no model; its report still shows how it got there. The divergence is the
      // error to report: a report that cannot be written (e.g. no metrics yet) must not hide it.
      if (e instanceof DivergenceError) await writeReport(outputDir).catch(() => undefined);
      throw e;
    }
    // savePretrained writes its own files and leaves checkpoint-N/, the logs and anything else in place
    await saveModel(outputDir);
    const finalMetrics: Record<string, number> = {};
    for (const entry of trainer.state.logHistory) Object.assign(finalMetrics, entry);
    await writeModelCard(outputDir, {
      baseModel: run.modelDir,
      method: TRAIN_COMMANDS[kind].method,
      dataset: run.dataset,
      config: run.config,
      metrics: finalMetrics,
      frameworkVersions: frameworkVersions(),
    });
    if (samples.length > 0)
      await writeFileAtomic(join(outputDir, SAMPLES_FILE), `${JSON.stringify(samples, null, 2)}\n`);
    const report = await writeReport(outputDir);
    say(
      `${kind}: ${out.globalStep} steps${Number.isFinite(out.trainingLoss) ? `, train_loss=${out.trainingLoss}` : ""}`,
    );
    say(`saved model and model card to ${resolve(outputDir)}`);
    say(`report: ${report.html} (${report.charts.length} charts)`);
  } finally {
    dispose();
  }
  return nanGuard.triggered && run.nanAction === "stop" ? EXIT_CODES.diverged : EXIT_CODES.ok;
}
