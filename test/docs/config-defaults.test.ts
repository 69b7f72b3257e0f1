// Every config field documents its default with `@defaultValue`, and that tag says what the one defaults
// table of the config really holds (so typedoc, the CLI's --help and the code cannot drift apart).
import { DEFAULT_TRAINING_ARGS } from "@prefkit/core";
import {
  CPO_DEFAULTS,
  DPO_DEFAULTS,
  GRPO_DEFAULTS,
  KTO_DEFAULTS,
  ORPO_DEFAULTS,
  PPO_DEFAULTS,
  REWARD_DEFAULTS,
  RLOO_DEFAULTS,
  SFT_DEFAULTS,
} from "@prefkit/losses";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain .mjs script without types
import { generateConfigDocs } from "../../scripts/gen-config-docs.mjs";

type Docs = Record<string, Record<string, { defaultValue?: string }>>;
const docs = JSON.parse(generateConfigDocs() as string) as Docs;

/** A `@defaultValue` tag's text as a value: JSON, or `undefined`. */
function tagValue(text: string): unknown {
  return text === "undefined" ? undefined : JSON.parse(text);
}

const TABLES: Record<string, object> = {
  sft: SFT_DEFAULTS,
  dpo: DPO_DEFAULTS,
  reward: REWARD_DEFAULTS,
  ppo: PPO_DEFAULTS,
  kto: KTO_DEFAULTS,
  orpo: ORPO_DEFAULTS,
  cpo: CPO_DEFAULTS,
  grpo: GRPO_DEFAULTS,
  rloo: RLOO_DEFAULTS,
};

describe("config defaults", () => {
  it("TrainingArgs: every field has a @defaultValue equal to DEFAULT_TRAINING_ARGS", () => {
    const fields = docs["training"]!;
    expect(Object.keys(fields).sort()).toEqual(Object.keys(DEFAULT_TRAINING_ARGS).sort());
    for (const [name, doc] of Object.entries(fields)) {
      expect(doc.defaultValue, `TrainingArgs.${name} has no @defaultValue`).toBeDefined();
      expect(tagValue(doc.defaultValue!), `TrainingArgs.${name}`).toEqual(
        (DEFAULT_TRAINING_ARGS as Record<string, unknown>)[name],
      );
    }
  });

  for (const [kind, table] of Object.entries(TABLES)) {
    it(`${kind}: every field's @defaultValue equals its defaults table (inherited loop fields: TrainingArgs')`, () => {
      const fields = docs[kind]!;
      const merged = { ...DEFAULT_TRAINING_ARGS, ...table } as Record<string, unknown>;
      expect(Object.keys(fields).sort()).toEqual(Object.keys(merged).sort());
      for (const [name, doc] of Object.entries(fields)) {
        expect(doc.defaultValue, `${kind}.${name} has no @defaultValue`).toBeDefined();
        expect(tagValue(doc.defaultValue!), `${kind}.${name}`).toEqual(merged[name]);
      }
    });
  }
});
