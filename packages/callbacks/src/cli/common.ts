/**
 * What the CLI's commands share: where output goes, exits with a chosen code, engine options, model checks.
 * @module
 */
import { stat } from "node:fs/promises";
import { CheckpointError, ConfigError, initEngine } from "@prefkit/core";
import type { Command } from "commander";

/** Where the CLI writes. */
export interface CliIo {
  /** Normal output (progress, results). */
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  /** Errors and warnings. */
  stderr: NodeJS.WritableStream;
}

/** A failure with a chosen exit code and a one-line message. */
export class CliExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export function addEngineOptions(cmd: Command): Command {
  return cmd
    .option(
      "--backend <name>",
      "TensorFlow.js backend: wasm, cpu, tensorflow or auto (default: $PREFKIT_BACKEND, else auto)",
    )
    .option("--threads <n>", "XNNPACK threads for wasm, 1-8 (default: $PREFKIT_THREADS, else min(4, cores))");
}

export async function startEngine(opts: Record<string, unknown>): Promise<void> {
  const threads = opts["threads"] === undefined ? undefined : Number(opts["threads"]);
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 8)) {
    throw new ConfigError(`must be an integer in 1..8, got ${JSON.stringify(opts["threads"])}`, { field: "threads" });
  }
  await initEngine({
    ...(opts["backend"] !== undefined ? { backend: String(opts["backend"]) } : {}),
    ...(threads !== undefined ? { threads } : {}),
  });
}

/** A model directory given on the command line must exist and be a directory: exit 5 (checkpoint) otherwise. */
export async function checkModelDir(dir: string, field: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    throw new CheckpointError("the model directory does not exist", { file: dir, field });
  }
  if (!isDir)
    throw new CheckpointError("is not a model directory (config.json, model.safetensors, tokenizer files)", {
      file: dir,
      field,
    });
}

/**
 * Load from a model directory; any problem with its files (config, weights, tokenizer, shapes that do not
 * match) is a model-file problem for the CLI (`CheckpointError`, exit 5), whatever class the loader used.
 */
export async function fromModelDir<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (e instanceof ConfigError) throw new CheckpointError(e.message, {}, { cause: e });
    throw e;
  }
}
