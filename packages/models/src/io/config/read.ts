/**
 * Reading `config.json` and `generation_config.json` from a model directory (or the file itself).
 * @module
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { readJsonFile } from "../json.js";
import { CONFIG_NAME, GENERATION_CONFIG_NAME, type GenerationConfig, type PretrainedConfig } from "./schema.js";
import { validateGenerationConfig, validateModelConfig } from "./validate.js";

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Read `config.json` from a model directory (or a path to the JSON file itself).
 * @param dirOrFile - the model directory or the config file.
 * @returns the validated config with family defaults filled in (see {@link validateModelConfig}).
 * @throws ConfigError naming the file (and field) if it is missing, not JSON, or invalid.
 */
export async function readModelConfig(dirOrFile: string): Promise<PretrainedConfig> {
  const file = (await isDirectory(dirOrFile)) ? join(dirOrFile, CONFIG_NAME) : dirOrFile;
  return validateModelConfig(await readJsonFile(file, "config"), file);
}

/**
 * Read `generation_config.json` from a model directory (or a path to the file itself).
 * @param dirOrFile - the model directory or the generation config file.
 * @returns the validated config, or `undefined` if the file does not exist.
 * @throws ConfigError naming the file (and field) if it is not JSON or invalid.
 */
export async function readGenerationConfig(dirOrFile: string): Promise<GenerationConfig | undefined> {
  const file = (await isDirectory(dirOrFile)) ? join(dirOrFile, GENERATION_CONFIG_NAME) : dirOrFile;
  try {
    await stat(file);
  } catch {
    return undefined;
  }
  return validateGenerationConfig(await readJsonFile(file, "config"), file);
}
