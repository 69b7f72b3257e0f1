#!/usr/bin/env node
/**
 * Generates packages/callbacks/src/cli/config-docs.json — the CLI's one-line help per config field —
 * from the TSDoc of the config interfaces (TrainingArgs, SFTConfig, DPOConfig, RewardConfig,
 * PPOConfig, KTOConfig, ORPOConfig, CPOConfig, GRPOConfig, RLOOConfig), with each field's TypeScript
 * type, its `@defaultValue` tag (as written) and, for string-literal unions, the allowed values.
 *
 *   node scripts/gen-config-docs.mjs          rewrite the file
 *   node scripts/gen-config-docs.mjs --check  exit 1 if the file is stale
 *
 * packages/callbacks/test/cli.test.ts runs the check, so an edited TSDoc that is not regenerated fails CI.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CONFIG_DOCS_FILE = join(ROOT, "packages/callbacks/src/cli/config-docs.json");

/** Config kind → [file, interface name]. Interfaces that extend TrainingArgs inherit its docs. */
const SOURCES = {
  training: ["packages/core/src/interfaces/trainer.ts", "TrainingArgs"],
  sft: ["packages/losses/src/sft/config.ts", "SFTConfig"],
  dpo: ["packages/losses/src/dpo/config.ts", "DPOConfig"],
  reward: ["packages/losses/src/reward/config.ts", "RewardConfig"],
  ppo: ["packages/losses/src/ppo/config.ts", "PPOConfig"],
  kto: ["packages/losses/src/kto/config.ts", "KTOConfig"],
  orpo: ["packages/losses/src/orpo/config.ts", "ORPOConfig"],
  cpo: ["packages/losses/src/cpo/config.ts", "CPOConfig"],
  grpo: ["packages/losses/src/grpo/config.ts", "GRPOConfig"],
  rloo: ["packages/losses/src/rloo/config.ts", "RLOOConfig"],
};

function oneLine(text) {
  return text
    .replace(/\s+/g, " ")
    .replace(/\{@link ([^}|]+)(\|[^}]*)?\}/g, "$1")
    .trim();
}

/** The generated module's text. */
export function generateConfigDocs() {
  const files = Object.values(SOURCES).map(([f]) => join(ROOT, f));
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    skipLibCheck: true,
    experimentalDecorators: true,
    paths: { "@prefkit/core": [join(ROOT, "packages/core/src/index.ts")] },
  });
  const checker = program.getTypeChecker();
  const out = {};
  for (const [kind, [file, name]] of Object.entries(SOURCES)) {
    const sf = program.getSourceFile(join(ROOT, file));
    let decl;
    ts.forEachChild(sf, (n) => {
      if (ts.isInterfaceDeclaration(n) && n.name.text === name) decl = n;
    });
    if (!decl) throw new Error(`${name} not found in ${file}`);
    const type = checker.getTypeAtLocation(decl);
    const fields = {};
    for (const prop of checker.getPropertiesOfType(type)) {
      const doc = oneLine(ts.displayPartsToString(prop.getDocumentationComment(checker)));
      const tag = prop.getJsDocTags(checker).find((t) => t.name === "defaultValue");
      const defaultValue = tag === undefined ? undefined : oneLine(ts.displayPartsToString(tag.text));
      const propType = checker.getTypeOfSymbol(prop);
      const typeText = checker.typeToString(propType, undefined, ts.TypeFormatFlags.NoTruncation);
      const literals = propType.isUnion()
        ? propType.types.filter((t) => t.isStringLiteral()).map((t) => t.value)
        : propType.isStringLiteral()
          ? [propType.value]
          : [];
      const allOpen =
        propType.isUnion() && propType.types.some((t) => !t.isStringLiteral() && t.flags & ts.TypeFlags.String);
      fields[prop.name] = {
        doc,
        type: typeText,
        ...(defaultValue !== undefined ? { defaultValue } : {}),
        ...(literals.length > 1 && !allOpen ? { allowed: literals } : {}),
      };
    }
    out[kind] = fields;
  }
  return `${JSON.stringify(out, null, 2)}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const text = generateConfigDocs();
  if (process.argv.includes("--check")) {
    const current = readFileSync(CONFIG_DOCS_FILE, "utf8");
    if (current !== text) {
      console.error(`${CONFIG_DOCS_FILE} is stale: run node scripts/gen-config-docs.mjs`);
      process.exit(1);
    }
  } else {
    writeFileSync(CONFIG_DOCS_FILE, text);
    console.log(`wrote ${CONFIG_DOCS_FILE}`);
  }
}
