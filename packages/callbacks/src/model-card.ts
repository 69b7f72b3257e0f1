/**
 * Model cards: the `README.md` TRL writes next to saved weights, for prefkit runs.
 * @module
 */
import { join } from "node:path";
import {
  type Callback,
  type LogPayload,
  type SavePayload,
  type TrainerControl,
  type TrainerState,
  type TrainingArgs,
  tf,
} from "@prefkit/core";
import { replaceOwnFile } from "./metrics-file.js";

/** Training methods a card can describe, with TRL's tag for each. */
export type TrainingMethod = "sft" | "dpo" | "reward" | "ppo" | "kto" | "orpo" | "cpo" | "grpo" | "rloo";

/** What {@link writeModelCard} needs. */
export interface ModelCardInfo {
  /** Base model: a hub id or the directory it was loaded from. */
  baseModel: string;
  /** Training method. */
  method: TrainingMethod;
  /** Dataset name or file. */
  dataset?: string;
  /** The trainer config (any JSON-serialisable object; camelCase field names as prefkit uses them). */
  config?: Record<string, unknown>;
  /** Final metrics (TRL names), e.g. the last log entry. */
  metrics?: Record<string, number>;
  /** Framework versions. Default {@link frameworkVersions}. */
  frameworkVersions?: Record<string, string>;
  /** Model name in the title. Default: the directory's base name. */
  modelName?: string;
}

interface MethodInfo {
  tags: string[];
  name: string;
  paper?: { title: string; url: string; bibtex: string };
}

/** Tags and paper per method, as TRL's `generate_model_card` uses them. */
const METHODS: Record<TrainingMethod, MethodInfo> = {
  sft: { tags: ["sft"], name: "SFT" },
  dpo: {
    tags: ["dpo"],
    name: "DPO",
    paper: {
      title: "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
      url: "https://huggingface.co/papers/2305.18290",
      bibtex: `@inproceedings{rafailov2023direct,
    title        = {{Direct Preference Optimization: Your Language Model is Secretly a Reward Model}},
    author       = {Rafael Rafailov and Archit Sharma and Eric Mitchell and Christopher D. Manning and Stefano Ermon and Chelsea Finn},
    year         = 2023,
    booktitle    = {Advances in Neural Information Processing Systems 36: Annual Conference on Neural Information Processing Systems 2023, NeurIPS 2023, New Orleans, LA, USA, December 10 - 16, 2023},
}`,
    },
  },
  reward: { tags: ["reward-trainer"], name: "a reward model (Bradley-Terry pairwise loss)" },
  ppo: {
    tags: ["ppo"],
    name: "PPO",
    paper: {
      title: "Fine-Tuning Language Models from Human Preferences",
      url: "https://huggingface.co/papers/1909.08593",
      bibtex: `@article{mziegler2019fine-tuning,
    title        = {{Fine-Tuning Language Models from Human Preferences}},
    author       = {Daniel M. Ziegler and Nisan Stiennon and Jeffrey Wu and Tom B. Brown and Alec Radford and Dario Amodei and Paul F. Christiano and Geoffrey Irving},
    year         = 2019,
    eprint       = {arXiv:1909.08593}
}`,
    },
  },
  kto: {
    tags: ["kto"],
    name: "KTO",
    paper: {
      title: "KTO: Model Alignment as Prospect Theoretic Optimization",
      url: "https://huggingface.co/papers/2402.01306",
      bibtex: `@article{ethayarajh2024kto,
    title        = {{KTO: Model Alignment as Prospect Theoretic Optimization}},
    author       = {Kawin Ethayarajh and Winnie Xu and Niklas Muennighoff and Dan Jurafsky and Douwe Kiela},
    year         = 2024,
    eprint       = {arXiv:2402.01306},
}`,
    },
  },
  orpo: {
    tags: ["orpo"],
    name: "ORPO",
    paper: {
      title: "ORPO: Monolithic Preference Optimization without Reference Model",
      url: "https://huggingface.co/papers/2403.07691",
      bibtex: `@article{hong2024orpo,
    title        = {{ORPO: Monolithic Preference Optimization without Reference Model}},
    author       = {Jiwoo Hong and Noah Lee and James Thorne},
    year         = 2024,
    eprint       = {arXiv:2403.07691}
}`,
    },
  },
  cpo: {
    tags: ["cpo"],
    name: "CPO",
    paper: {
      title: "Contrastive Preference Optimization: Pushing the Boundaries of LLM Performance in Machine Translation",
      url: "https://huggingface.co/papers/2401.08417",
      bibtex: `@inproceedings{xu2024contrastive,
    title        = {{Contrastive Preference Optimization: Pushing the Boundaries of LLM Performance in Machine Translation}},
    author       = {Haoran Xu and Amr Sharaf and Yunmo Chen and Weiting Tan and Lingfeng Shen and Benjamin Van Durme and Kenton Murray and Young Jin Kim},
    year         = 2024,
    booktitle    = {Forty-first International Conference on Machine Learning, {ICML} 2024, Vienna, Austria, July 21-27, 2024},
}`,
    },
  },
  grpo: {
    tags: ["grpo"],
    name: "GRPO",
    paper: {
      title: "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models",
      url: "https://huggingface.co/papers/2402.03300",
      bibtex: `@article{shao2024deepseekmath,
    title        = {{DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models}},
    author       = {Zhihong Shao and Peiyi Wang and Qihao Zhu and Runxin Xu and Junxiao Song and Mingchuan Zhang and Y. K. Li and Y. Wu and Daya Guo},
    year         = 2024,
    eprint       = {arXiv:2402.03300},
}`,
    },
  },
  rloo: {
    tags: ["rloo"],
    name: "RLOO",
    paper: {
      title: "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs",
      url: "https://huggingface.co/papers/2402.14740",
      bibtex: `@inproceedings{ahmadian2024back,
    title        = {{Back to Basics: Revisiting REINFORCE-Style Optimization for Learning from Human Feedback in LLMs}},
    author       = {Arash Ahmadian and Chris Cremer and Matthias Gall{'{e}} and Marzieh Fadaee and Julia Kreutzer and Olivier Pietquin and Ahmet {"{U}}st{"{u}}n and Sara Hooker},
    year         = 2024,
    booktitle    = {Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics (Volume 1: Long Papers), {ACL} 2024, Bangkok, Thailand, August 11-16, 2024},
}`,
    },
  },
};

/** prefkit, TensorFlow.js and Node versions of this process. */
export function frameworkVersions(): Record<string, string> {
  return { prefkit: "0.1.0", "TensorFlow.js": tf.version_core, "Node.js": process.versions.node };
}

const yamlString = (s: string) => JSON.stringify(s);

function fence(lang: string, body: string): string {
  return `\`\`\`${lang}\n${body}\n\`\`\``;
}

/**
 * The text of a TRL-style model card: YAML front matter (`base_model`, `library_name: prefkit`,
 * `tags` with `generated_from_trainer`, `prefkit`, `trl` and the method's TRL tag such as `dpo`), then
 * sections: quick start, training procedure (method, paper, dataset), training hyperparameters
 * (the config), final metrics, framework versions and citations.
 */
export function modelCardText(info: ModelCardInfo, modelName: string): string {
  const m = METHODS[info.method];
  const front = [
    "---",
    `base_model: ${yamlString(info.baseModel)}`,
    "library_name: prefkit",
    `model_name: ${yamlString(modelName)}`,
    ...(info.dataset !== undefined ? [`datasets:\n- ${yamlString(info.dataset)}`] : []),
    "tags:",
    ...["generated_from_trainer", "prefkit", "trl", ...m.tags].map((t) => `- ${t}`),
    "licence: license",
    "---",
  ].join("\n");
  const onDataset = info.dataset !== undefined ? ` on the \`${info.dataset}\` dataset` : "";
  const quick = fence(
    "ts",
    `import { AutoModelForCausalLM, AutoTokenizer } from "@prefkit/models";

const model = await AutoModelForCausalLM.fromPretrained("${modelName}");
const tokenizer = await AutoTokenizer.fromPretrained("${modelName}");`,
  );
  const quickPy = fence(
    "python",
    `from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("${modelName}")
tokenizer = AutoTokenizer.from_pretrained("${modelName}")`,
  );
  const config = Object.entries(info.config ?? {})
    .filter(([, v]) => v !== undefined && typeof v !== "function")
    .map(([k, v]) => `| ${k} | ${JSON.stringify(v)} |`)
    .join("\n");
  const metrics = Object.entries(info.metrics ?? {})
    .map(([k, v]) => `| ${k} | ${Number.isFinite(v) ? Number(v.toPrecision(6)) : v} |`)
    .join("\n");
  const versions = Object.entries(info.frameworkVersions ?? frameworkVersions())
    .map(([k, v]) => `- ${k}: ${v}`)
    .join("\n");
  const paper = m.paper ? `, a method introduced in [${m.paper.title}](${m.paper.url})` : "";
  const parts = [
    front,
    `# Model Card for ${modelName}`,
    `This model is a fine-tuned version of \`${info.baseModel}\`${onDataset}.\n` +
      "It has been trained using prefkit, a TypeScript port of [TRL](https://github.com/huggingface/trl); " +
      "the weights are a Hugging Face checkpoint (config.json + model.safetensors).",
    `## Quick start\n\n${quick}\n\nor, in Python:\n\n${quickPy}`,
    `## Training procedure\n\nThis model was trained with ${m.name}${paper}.`,
    ...(config ? [`### Training hyperparameters\n\n| field | value |\n|---|---|\n${config}`] : []),
    ...(metrics ? [`### Final metrics\n\n| metric | value |\n|---|---|\n${metrics}`] : []),
    `### Framework versions\n\n${versions}`,
    `## Citations\n\n${
      m.paper ? `Cite ${m.name} as:\n\n${fence("bibtex", m.paper.bibtex)}\n\n` : ""
    }Cite TRL, whose semantics prefkit follows, as:\n\n${fence(
      "bibtex",
      `@misc{vonwerra2022trl,
    title        = {{TRL: Transformer Reinforcement Learning}},
    author       = {Leandro von Werra and Younes Belkada and Lewis Tunstall and Edward Beeching and Tristan Thrush and Nathan Lambert and Shengyi Huang and Kashif Rasul and Quentin Gallou{\\'e}dec},
    year         = 2020,
    journal      = {GitHub repository},
    publisher    = {GitHub},
    howpublished = {\\url{https://github.com/huggingface/trl}}
}`,
    )}`,
  ];
  return `${parts.join("\n\n")}\n`;
}

/** True for a model card prefkit wrote (its YAML front matter names prefkit as the library). */
export function isPrefkitModelCard(text: string): boolean {
  const end = text.startsWith("---\n") ? text.indexOf("\n---", 3) : -1;
  return end > 0 && text.slice(0, end).split("\n").includes("library_name: prefkit");
}

/**
 * Write `<dir>/README.md`, a model card like the ones TRL generates (see {@link modelCardText}),
 * atomically. Call it after saving a model or adapter into `dir`. Returns the file path. An existing
 * `README.md` is replaced only when it is a prefkit card: a user's own README is never overwritten.
 * @throws ConfigError naming the file when `dir` holds a README.md prefkit did not write.
 */
export async function writeModelCard(dir: string, info: ModelCardInfo): Promise<string> {
  const modelName = info.modelName ?? (dir.split(/[\\/]/).filter(Boolean).at(-1) || "model");
  const path = join(dir, "README.md");
  await replaceOwnFile(path, modelCardText(info, modelName), isPrefkitModelCard);
  return path;
}

/** Options of {@link ModelCardCallback}: the card fields the trainer cannot know. */
export type ModelCardCallbackOptions = Pick<ModelCardInfo, "baseModel" | "method" | "dataset" | "frameworkVersions">;

/**
 * Writes a model card into every checkpoint the trainer saves (`onSave`), with the run's config
 * and the latest logged training metrics.
 */
export class ModelCardCallback implements Callback {
  /** Callback name. */
  readonly name = "ModelCardCallback";
  /** Latest logged values (training and evaluation merged). */
  readonly latest: Record<string, number> = {};
  private readonly options: ModelCardCallbackOptions;

  /** @param options base model, method and dataset. */
  constructor(options: ModelCardCallbackOptions) {
    this.options = options;
  }

  /** Remembers the latest values. */
  onLog(_a: Readonly<TrainingArgs>, _s: Readonly<TrainerState>, _c: TrainerControl, payload: LogPayload): void {
    Object.assign(this.latest, payload.logs);
  }

  /** Writes `README.md` into the checkpoint. */
  async onSave(
    args: Readonly<TrainingArgs>,
    _s: Readonly<TrainerState>,
    _c: TrainerControl,
    payload: SavePayload,
  ): Promise<void> {
    await writeModelCard(payload.checkpointDir, {
      ...this.options,
      config: { ...args } as Record<string, unknown>,
      metrics: { ...this.latest },
    });
  }
}
