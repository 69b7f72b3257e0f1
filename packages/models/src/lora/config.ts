/**
 * `LoraConfig`: PEFT's `LoraConfig` in camelCase, its defaults, validation, module matching, and the
 * `adapter_config.json` mapping (PEFT's snake_case file).
 * @module
 */
import { ConfigError } from "@prefkit/core";

/** PEFT's task types that prefkit models implement. */
export type LoraTaskType = "CAUSAL_LM" | "SEQ_CLS";

/**
 * PEFT's `LoraConfig` (single adapter, plain LoRA). Defaults are PEFT's.
 *
 * ```ts no-run
 * const config: LoraConfig = { r: 16, loraAlpha: 32, loraDropout: 0.05, targetModules: ["q_proj", "v_proj"] };
 * ```
 */
export interface LoraConfig {
  /** Rank of the update `B·A`. PEFT default 8. */
  r?: number;
  /** Scale numerator: the update is multiplied by `loraAlpha / r` (or `/ √r` with `useRslora`). PEFT default 8. */
  loraAlpha?: number;
  /** Dropout on the LoRA input path only (never on the base path), during training. PEFT default 0. */
  loraDropout?: number;
  /**
   * Which projections get adapters, by HF module name: a list of names, each matching a module whose
   * name equals it or ends with `.${name}` (`"q_proj"`, `"model.layers.0.mlp.up_proj"`); a string,
   * matched as a regular expression against the WHOLE module name (Python's `re.fullmatch`); or
   * `"all-linear"`: every projection except the output layer (`lm_head`, `score`). Required, as in
   * PEFT for architectures it does not know.
   */
  targetModules: readonly string[] | string;
  /** Rank-stabilised LoRA: scaling `loraAlpha / √r` instead of `loraAlpha / r` (Kalajdzievski 2023). Default false. */
  useRslora?: boolean;
  /**
   * Modules trained in full and saved with the adapter (PEFT's `modules_to_save`), e.g. `["score"]` for a
   * reward model. With `taskType: "SEQ_CLS"`, `score` is added automatically, as PEFT does.
   */
  modulesToSave?: readonly string[] | null;
  /** Bias training; only `"none"` (PEFT's default) is implemented. */
  bias?: "none";
  /** PEFT task type, written to `adapter_config.json`. Default: from the model (`CAUSAL_LM` or `SEQ_CLS`). */
  taskType?: LoraTaskType;
  /** Written as `base_model_name_or_path`. Default: the directory the base model was loaded from, else null. */
  baseModelNameOrPath?: string | null;
}

/** A {@link LoraConfig} with every default filled in (as {@link resolveLoraConfig} returns it). */
export interface ResolvedLoraConfig {
  /** Rank. */
  r: number;
  /** Scale numerator. */
  loraAlpha: number;
  /** Dropout probability on the LoRA path. */
  loraDropout: number;
  /** As given (a list is copied). */
  targetModules: readonly string[] | string;
  /** Rank-stabilised scaling. */
  useRslora: boolean;
  /** Modules trained in full, or null. */
  modulesToSave: readonly string[] | null;
  /** Always `"none"`. */
  bias: "none";
  /** Task type, if known yet. */
  taskType: LoraTaskType | undefined;
  /** `base_model_name_or_path`, if known yet. */
  baseModelNameOrPath: string | null | undefined;
}

/** PEFT's defaults (`peft.LoraConfig`). */
export const LORA_DEFAULTS = Object.freeze({ r: 8, loraAlpha: 8, loraDropout: 0, useRslora: false, bias: "none" });

/**
 * Fill PEFT's defaults and validate.
 * @throws ConfigError naming the field: `r` not a positive integer, `loraDropout` outside [0, 1), a bad
 *   `targetModules` (empty, or an invalid regular expression), `bias` other than `"none"`.
 */
export function resolveLoraConfig(config: LoraConfig): ResolvedLoraConfig {
  const r = config.r ?? LORA_DEFAULTS.r;
  if (!Number.isInteger(r) || r <= 0) throw new ConfigError(`must be a positive integer, got ${r}`, { field: "r" });
  const loraAlpha = config.loraAlpha ?? LORA_DEFAULTS.loraAlpha;
  if (!Number.isFinite(loraAlpha))
    throw new ConfigError(`must be a finite number, got ${loraAlpha}`, { field: "loraAlpha" });
  const loraDropout = config.loraDropout ?? LORA_DEFAULTS.loraDropout;
  if (!(loraDropout >= 0 && loraDropout < 1)) {
    throw new ConfigError(`must be in [0, 1), got ${loraDropout}`, { field: "loraDropout" });
  }
  const bias = config.bias ?? "none";
  if (bias !== "none") {
    throw new ConfigError(`only "none" is supported, got ${JSON.stringify(bias)}`, { field: "bias" });
  }
  const t = config.targetModules as unknown;
  if (typeof t === "string") {
    if (t.length === 0) throw new ConfigError("must not be empty", { field: "targetModules" });
    if (t !== "all-linear") compileFullMatch(t);
  } else if (!Array.isArray(t) || t.length === 0 || t.some((x) => typeof x !== "string" || x.length === 0)) {
    throw new ConfigError('must be a non-empty list of module names, a regex string, or "all-linear"', {
      field: "targetModules",
    });
  }
  const m = config.modulesToSave ?? null;
  if (m !== null && (!Array.isArray(m) || m.some((x) => typeof x !== "string" || x.length === 0))) {
    throw new ConfigError("must be a list of module names or null", { field: "modulesToSave" });
  }
  if (config.taskType !== undefined && config.taskType !== "CAUSAL_LM" && config.taskType !== "SEQ_CLS") {
    throw new ConfigError(`must be "CAUSAL_LM" or "SEQ_CLS", got ${JSON.stringify(config.taskType)}`, {
      field: "taskType",
    });
  }
  return {
    r,
    loraAlpha,
    loraDropout,
    targetModules: typeof t === "string" ? t : [...(t as string[])],
    useRslora: config.useRslora ?? false,
    modulesToSave: m === null ? null : [...m],
    bias: "none",
    taskType: config.taskType,
    baseModelNameOrPath: config.baseModelNameOrPath,
  };
}

/** PEFT's scaling: `loraAlpha / r`, or `loraAlpha / √r` with rsLoRA. */
export function loraScaling(config: Pick<ResolvedLoraConfig, "r" | "loraAlpha" | "useRslora">): number {
  return config.useRslora ? config.loraAlpha / Math.sqrt(config.r) : config.loraAlpha / config.r;
}

function compileFullMatch(pattern: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new ConfigError(`not a valid regular expression: ${e instanceof Error ? e.message : String(e)}`, {
      field: "targetModules",
    });
  }
}

/** PEFT's list rule: the name equals a key or ends with `.${key}`. */
export function moduleNameMatches(name: string, keys: readonly string[]): boolean {
  return keys.some((k) => name === k || name.endsWith(`.${k}`));
}

/** Output layers that `"all-linear"` leaves out, as PEFT does (the LM head, and a classifier head). */
export const OUTPUT_LAYER_NAMES: readonly string[] = Object.freeze(["lm_head", "score"]);

/**
 * The module names (from `available`, in order) that `targetModules` selects, with PEFT's rules.
 * Names listed in `exclude` (the `modulesToSave`) are never targeted.
 * @throws ConfigError (field `targetModules`) when nothing matches, listing a few available names.
 */
export function selectTargetModules(
  targetModules: readonly string[] | string,
  available: readonly string[],
  exclude: readonly string[] = [],
): string[] {
  let picked: string[];
  if (targetModules === "all-linear") {
    picked = available.filter((n) => !OUTPUT_LAYER_NAMES.includes(n));
  } else if (typeof targetModules === "string") {
    const re = compileFullMatch(targetModules);
    picked = available.filter((n) => re.test(n));
  } else {
    picked = available.filter((n) => moduleNameMatches(n, targetModules));
  }
  picked = picked.filter((n) => !moduleNameMatches(n, exclude));
  if (picked.length === 0) {
    const sample = available.slice(0, 8).join(", ");
    throw new ConfigError(
      `no module matches ${JSON.stringify(targetModules)} (modules are named like: ${sample}${available.length > 8 ? ", ..." : ""})`,
      { field: "targetModules" },
    );
  }
  return picked;
}

/** The leaf names (`q_proj`) of module names, sorted and unique: what PEFT writes for `"all-linear"`. */
export function leafNames(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.slice(n.lastIndexOf(".") + 1)))].sort();
}

/** File names of a PEFT adapter directory. */
export const ADAPTER_CONFIG_NAME = "adapter_config.json";
/** The adapter weights file. */
export const ADAPTER_SAFETENSORS_NAME = "adapter_model.safetensors";
/** Prefix PEFT gives every key of a saved adapter (`PeftModel.base_model.model.`). */
export const PEFT_KEY_PREFIX = "base_model.model.";

/**
 * `adapter_config.json` as PEFT's `LoraConfig.save_pretrained` writes it, restricted to fields that PEFT
 * has known since 0.10 (newer PEFT fills the rest with defaults; older PEFT rejects unknown fields).
 */
export function toPeftConfigJson(
  config: ResolvedLoraConfig,
  resolvedTargets: readonly string[] | string,
): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: config.baseModelNameOrPath ?? null,
    bias: config.bias,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.loraAlpha,
    lora_dropout: config.loraDropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: config.modulesToSave === null ? null : [...config.modulesToSave],
    peft_type: "LORA",
    r: config.r,
    rank_pattern: {},
    revision: null,
    target_modules: typeof resolvedTargets === "string" ? resolvedTargets : [...resolvedTargets],
    task_type: config.taskType ?? null,
    use_dora: false,
    use_rslora: config.useRslora,
  };
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === "object" && Object.keys(v as object).length === 0);
}

/**
 * Read PEFT's `adapter_config.json` content into a {@link LoraConfig}.
 * @throws ConfigError naming the file and field: not LoRA, a missing `r`/`lora_alpha`/`target_modules`, or
 *   a feature prefkit does not implement (DoRA, `fan_in_fan_out`, bias training, per-layer patterns,
 *   `layers_to_transform`).
 */
export function fromPeftConfigJson(json: unknown, file: string): LoraConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError("expected a JSON object", { file });
  }
  const j = json as Record<string, unknown>;
  if (j["peft_type"] !== "LORA") {
    throw new ConfigError(`only "LORA" adapters are supported, got ${JSON.stringify(j["peft_type"])}`, {
      file,
      field: "peft_type",
    });
  }
  for (const f of ["r", "lora_alpha"]) {
    if (typeof j[f] !== "number") throw new ConfigError("missing or not a number", { file, field: f });
  }
  const unsupported: Array<[string, boolean]> = [
    ["use_dora", j["use_dora"] === true],
    ["fan_in_fan_out", j["fan_in_fan_out"] === true],
    ["bias", j["bias"] !== undefined && j["bias"] !== "none"],
    ["rank_pattern", !isEmpty(j["rank_pattern"])],
    ["alpha_pattern", !isEmpty(j["alpha_pattern"])],
    ["layers_to_transform", !isEmpty(j["layers_to_transform"])],
    ["layer_replication", !isEmpty(j["layer_replication"])],
  ];
  for (const [field, bad] of unsupported) {
    if (bad) throw new ConfigError(`${JSON.stringify(j[field])} is not supported by prefkit's LoRA`, { file, field });
  }
  const t = j["target_modules"];
  if (!(typeof t === "string" || (Array.isArray(t) && t.every((x) => typeof x === "string")))) {
    throw new ConfigError("missing, or not a list of names / a regex string", { file, field: "target_modules" });
  }
  const task = j["task_type"];
  const mts = j["modules_to_save"];
  if (mts !== undefined && mts !== null && !(Array.isArray(mts) && mts.every((x) => typeof x === "string"))) {
    throw new ConfigError("must be a list of module names or null", { file, field: "modules_to_save" });
  }
  return {
    r: j["r"] as number,
    loraAlpha: j["lora_alpha"] as number,
    loraDropout: typeof j["lora_dropout"] === "number" ? (j["lora_dropout"] as number) : 0,
    targetModules: t as string | string[],
    useRslora: j["use_rslora"] === true,
    modulesToSave: (mts as string[] | null | undefined) ?? null,
    bias: "none",
    ...(task === "CAUSAL_LM" || task === "SEQ_CLS" ? { taskType: task } : {}),
    baseModelNameOrPath:
      typeof j["base_model_name_or_path"] === "string" ? (j["base_model_name_or_path"] as string) : null,
  };
}
