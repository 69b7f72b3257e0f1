/**
 * The command line the training examples share: `--quick`, `--backend wasm|cpu`, `--threads N` and
 * `--help`, plus each example's own options; it starts the engine and names the backend it got.
 */
import { parseArgs } from "node:util";
import { engineInfo, initEngine } from "@prefkit/core";

/**
 * Parse the arguments, print `help` and exit on `--help`, start the engine and print
 * `<title> · backend <name>, <n> thread(s)`.
 * @param {string} title what runs, e.g. `"prefkit PPO"`.
 * @param {string} help the usage line.
 * @param {import("node:util").ParseArgsConfig["options"]} [options] the example's own options.
 * @returns {Promise<Record<string, string | boolean | undefined>>} the parsed values.
 */
export async function exampleCommandLine(title, help, options = {}) {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      backend: { type: "string" },
      threads: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
      ...options,
    },
  });
  if (values.help) {
    console.log(help);
    process.exit(0);
  }
  const engine = {};
  if (values.backend !== undefined) engine.backend = values.backend;
  if (values.threads !== undefined) engine.threads = Number(values.threads);
  await initEngine(engine);
  const info = engineInfo();
  console.log(`${title} · backend ${info.backend}, ${info.threads} thread(s)`);
  return values;
}
