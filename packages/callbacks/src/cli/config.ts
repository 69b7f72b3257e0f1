/**
 * CLI config handling: defaults, a JSON/YAML config file and TRL-style flags, merged and coerced
 * field by field with errors that name the field.
 * @module
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError } from "@prefkit/core";
import {
  defaultCPOConfig,
  defaultDPOConfig,
  defaultGRPOConfig,
  defaultKTOConfig,
  defaultORPOConfig,
  defaultPPOConfig,
  defaultRewardConfig,
  defaultRLOOConfig,
  defaultSFTConfig,
} from "@prefkit/losses";
import { parse as parseYaml, type Tags } from "yaml";
import { CONFIG_DOCS, type ConfigFieldDoc } from "./config-docs.js";

/** The trainer configs the CLI knows. */
export type ConfigKind = "sft" | "dpo" | "reward" | "ppo" | "kto" | "orpo" | "cpo" | "grpo" | "rloo";

const DEFAULTS: Record<ConfigKind, () => object> = {
  sft: defaultSFTConfig,
  dpo: defaultDPOConfig,
  reward: defaultRewardConfig,
  ppo: defaultPPOConfig,
  kto: defaultKTOConfig,
  orpo: defaultORPOConfig,
  cpo: defaultCPOConfig,
  grpo: defaultGRPOConfig,
  rloo: defaultRLOOConfig,
};

/** Defaults of each config kind (TRL's, from `@prefkit/losses`). */
export function configDefaults(kind: ConfigKind): Record<string, unknown> {
  return { ...DEFAULTS[kind]() } as Record<string, unknown>;
}

/** One documented config field: name, default and help (from the config's TSDoc). */
export interface ConfigField extends ConfigFieldDoc {
  /** camelCase field name, e.g. `learningRate`. */
  name: string;
  /** The flag, e.g. `--learning-rate`. */
  flag: string;
  /** The default value. */
  default: unknown;
}

/** camelCase → kebab-case (`learningRate` → `learning-rate`, `adamBeta1` → `adam-beta1`). */
export function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** snake_case or kebab-case → camelCase (`learning_rate` → `learningRate`). */
export function camelCase(name: string): string {
  return name.replace(/[_-]([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * Every field of `kind`'s config: the keys of its defaults object, each with the one-line help
 * generated from the interface's TSDoc (`config-docs.json`). A field without docs gets
 * `"(undocumented)"`, which the CLI test rejects.
 */
export function configFields(kind: ConfigKind): ConfigField[] {
  const defaults = configDefaults(kind);
  const docs = CONFIG_DOCS[kind] as Record<string, ConfigFieldDoc | undefined>;
  return Object.keys(defaults).map((name) => {
    const doc = docs[name] ?? CONFIG_DOCS.training[name] ?? { doc: "(undocumented)", type: typeof defaults[name] };
    return { name, flag: `--${kebabCase(name)}`, default: defaults[name], ...doc };
  });
}

/** A default as the help shows it. */
export function formatDefault(v: unknown): string {
  if (v === undefined) return "unset";
  if (typeof v === "string") return JSON.stringify(v);
  return JSON.stringify(v);
}

const describeValue = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(JSON.stringify(v) ?? v));

/** Numbers as TRL's configs write them: decimal or exponent notation (`16`, `0.5`, `1e-5`), nothing else. */
const NUMBER_TEXT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * A config number from a flag or a file: a finite number, or a string in decimal or exponent notation.
 * `Number()` alone would also take `0x10` (16), `0b1`, `0o7`, `Infinity` and `" "` (0), which no TRL config means.
 * @returns the number, or undefined when `raw` is not one.
 */
export function parseConfigNumber(raw: unknown): number | undefined {
  if (typeof raw === "number") return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  return NUMBER_TEXT.test(text) ? Number(text) : undefined;
}

/**
 * Coerce `raw` (a flag's string, or a value from a config file) to `field`'s type, checking the
 * allowed values of string-literal unions. Further range checks are the trainer config's
 * (`resolveDPOConfig`, ...).
 * @throws ConfigError naming the field and what it accepts.
 */
export function coerceField(field: ConfigField, raw: unknown): unknown {
  const t = field.type;
  const nullable = /\bnull\b/.test(t);
  const optional = /\bundefined\b/.test(t);
  const fail = (what: string): never => {
    throw new ConfigError(`must be ${what}, got ${describeValue(raw)}`, { field: field.name });
  };
  if (typeof raw === "string" && nullable && /^(null|none)$/i.test(raw)) return null;
  if (raw === null) return nullable ? null : fail(`${t}`);
  if (field.allowed) {
    if (typeof raw !== "string" || !field.allowed.includes(raw)) {
      fail(`one of ${field.allowed.map((a) => `"${a}"`).join(", ")}${nullable ? " or null" : ""}`);
    }
    return raw;
  }
  const base = t
    .split("|")
    .map((s) => s.trim())
    .filter((s) => s !== "null" && s !== "undefined");
  if (base.some((b) => b.endsWith("[]"))) {
    const list =
      typeof raw === "string" ? raw.split(",").map((s) => s.trim()) : Array.isArray(raw) ? raw : fail("a list");
    if (base.includes("number[]")) {
      return (list as unknown[]).map((x) => parseConfigNumber(x) ?? fail("a comma-separated list of numbers"));
    }
    return (list as unknown[]).map(String);
  }
  if (base.includes("boolean") && (typeof raw === "boolean" || /^(true|false|yes|no|1|0)$/i.test(String(raw)))) {
    if (typeof raw === "boolean") return raw;
    return /^(true|yes|1)$/i.test(String(raw));
  }
  if (base.includes("number")) {
    const n = parseConfigNumber(raw);
    if (n !== undefined) return n;
    if (!base.includes("string"))
      fail(`a number${nullable ? " or null" : ""}${optional ? " (or leave it unset)" : ""}`);
  }
  if (base.includes("string")) return String(raw);
  if (base.includes("boolean")) fail("true or false");
  return raw;
}

/** CLI-level keys a config file may hold besides the trainer fields (TRL's CLI names accepted too). */
export const RUN_KEYS: Record<string, string> = {
  model: "model",
  modelNameOrPath: "model",
  dataset: "dataset",
  datasetName: "dataset",
  evalDataset: "evalDataset",
  rewardModel: "rewardModel",
  rewardModelPath: "rewardModel",
};

/** A parsed config file: trainer fields (camelCase) and run keys (`model`, `dataset`, ...). */
export interface ConfigFile {
  /** Trainer config fields, coerced. */
  fields: Record<string, unknown>;
  /** `model`, `dataset`, `evalDataset` when the file sets them. */
  run: Record<string, string>;
}

/** Config fields that hold paths: relative ones in a config file are relative to the file's folder. */
export const PATH_FIELDS: readonly string[] = ["outputDir", "resumeFromCheckpoint", "refLogProbsCacheDir"];

/**
 * YAML's core schema without the number forms TRL configs never mean: hex and octal integers (`0x10`, `0o17`)
 * and `.inf`/`.nan` stay strings, which {@link coerceField} then refuses for a number field.
 */
const configYamlTags = (tags: Tags): Tags =>
  tags.filter((t) => {
    const tag = t as { format?: string; tag?: string; test?: RegExp };
    return tag.format !== "HEX" && tag.format !== "OCT" && !(tag.test && /nan/i.test(String(tag.test)));
  });

/**
 * Read a JSON or YAML config file (JSON is read as YAML, of which it is a subset, so a key given twice is
 * an error in both). Keys may be camelCase or TRL's snake_case; numbers must be decimal or exponent
 * notation; relative paths (`model`, `dataset`, `output_dir`, …) are relative to the file's folder, as
 * the file's author meant them.
 * @throws ConfigError naming the file for unreadable or malformed files, and the field for an unknown
 *   key, a key given twice (in snake and camel case), or a bad value.
 */
export async function readConfigFile(path: string, kind: ConfigKind): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read the config file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      file: path,
    });
  }
  let obj: unknown;
  try {
    obj = parseYaml(text, { schema: "core", customTags: configYamlTags });
  } catch (e) {
    throw new ConfigError(`not valid JSON or YAML (${(e as Error).message.split("\n")[0]})`, { file: path });
  }
  if (obj === null || obj === undefined) obj = {};
  if (typeof obj !== "object" || Array.isArray(obj))
    throw new ConfigError("expected a mapping of fields", { file: path });
  return mergeConfigObject(obj as Record<string, unknown>, kind, path);
}

/**
 * Validate and coerce a config object (keys camelCase or snake_case) against `kind`'s fields. With `file`,
 * relative paths (the run keys and {@link PATH_FIELDS}) are resolved against its folder.
 * @throws ConfigError naming the field: unknown, given twice under two spellings, or a bad value.
 */
export function mergeConfigObject(obj: Record<string, unknown>, kind: ConfigKind, file?: string): ConfigFile {
  const fields = new Map(configFields(kind).map((f) => [f.name, f]));
  const out: ConfigFile = { fields: {}, run: {} };
  const where = file !== undefined ? { file } : {};
  const fromFile = (p: string) =>
    file === undefined || p.trim() === "" || isAbsolute(p) ? p : resolve(dirname(file), p);
  const seen = new Map<string, string>();
  for (const [rawKey, value] of Object.entries(obj)) {
    const key = camelCase(rawKey);
    const target = RUN_KEYS[key] ?? key;
    const first = seen.get(target);
    if (first !== undefined) {
      throw new ConfigError(`given twice, as "${first}" and as "${rawKey}": keep one`, { field: target, ...where });
    }
    seen.set(target, rawKey);
    if (key in RUN_KEYS) {
      out.run[RUN_KEYS[key]!] = fromFile(String(value));
      continue;
    }
    const field = fields.get(key);
    if (!field) {
      throw new ConfigError(`unknown ${kind} config field (see \`prefkit ${kind} --help\` for the fields)`, {
        field: rawKey,
        ...(file !== undefined ? { file } : {}),
      });
    }
    const coerced = coerceField(field, value);
    out.fields[key] = PATH_FIELDS.includes(key) && typeof coerced === "string" ? fromFile(coerced) : coerced;
  }
  return out;
}
