/**
 * The CLI's help text per config field. `config-docs.json` is generated from the config interfaces'
 * TSDoc by `scripts/gen-config-docs.mjs` (JSON, so the formatter leaves it byte-identical); a test
 * fails when it is stale. Regenerate with `node scripts/gen-config-docs.mjs` after editing a config's TSDoc.
 * @module
 */
import docs from "./config-docs.json" with { type: "json" };

/** Help text of one config field, taken from its TSDoc. */
export interface ConfigFieldDoc {
  /** The TSDoc comment on one line. */
  doc: string;
  /** The TypeScript type of the field. */
  type: string;
  /** The `@defaultValue` tag as written in the TSDoc (e.g. `1e-6`, `"sigmoid"`, `null`). */
  defaultValue?: string;
  /** The allowed values, when the type is a union of string literals. */
  allowed?: string[];
}

/** Per config kind (`training` and each training command's), the help of every field. */
export const CONFIG_DOCS: Record<
  "training" | "sft" | "dpo" | "reward" | "ppo" | "kto" | "orpo" | "cpo" | "grpo" | "rloo",
  Record<string, ConfigFieldDoc>
> = docs;
