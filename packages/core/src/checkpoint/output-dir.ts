/**
 * Output-directory rules, as transformers' `Trainer` and its example scripts apply them with
 * `overwrite_output_dir`: a run never writes into the working directory by accident, over the model it
 * trains, or over an earlier run it was not asked to continue or replace. Replacing an earlier run removes
 * only the files a prefkit run writes; anything else in the directory is left alone.
 * @module
 */
import { readdir, realpath, rm, stat } from "node:fs/promises";
import { dirname, basename, join, resolve, sep } from "node:path";
import { ConfigError } from "../errors/index.js";

/** Files a prefkit run writes at the top of its output directory besides `checkpoint-N/` (logs and reports). */
export const RUN_FILE_NAMES: readonly string[] = Object.freeze([
  "metrics.jsonl",
  "metrics.csv",
  "report.html",
  "charts",
  "samples.json",
]);

/** The files whose presence marks a directory as holding a run (with `checkpoint-N/`). */
const RUN_SIGNATURE_FILES = new Set(["metrics.jsonl", "metrics.csv"]);
const CHECKPOINT_DIR = /^checkpoint-\d+$/;
/** Staging names of `writeDirAtomically` and the old CLI's final-model staging directory. */
const STAGING = /^(\.(tmp|old|del)-checkpoint-\d+-\d+-\d+|\.final-model-tmp-\d+)$/;

/** Options of {@link prepareOutputDir}. */
export interface OutputDirOptions {
  /** The run continues a checkpoint in the directory (`resumeFromCheckpoint`): an earlier run is expected. */
  resume?: boolean;
  /** transformers' `overwrite_output_dir`: remove an earlier run's files (prefkit's own only) first. */
  overwriteOutputDir?: boolean;
  /** Model directories the run reads: the output must not be one of them or contain one. */
  modelDirs?: readonly string[];
  /**
   * Names the run writes at the top of the directory when it ends (the final model's files, its model card).
   * In a directory without an earlier run, any of them already present belongs to someone else: refused.
   */
  finalFiles?: readonly string[];
  /** Name of the setting in messages. Default `"outputDir"`. */
  field?: string;
}

/** What {@link prepareOutputDir} found and did. */
export interface OutputDirReport {
  /** The earlier run's entries found in the directory (names), empty for a fresh directory. */
  previousRun: string[];
  /** Entries removed because of `overwriteOutputDir` (names). */
  removed: string[];
}

async function kindOf(path: string): Promise<"file" | "dir" | undefined> {
  try {
    return (await stat(path)).isDirectory() ? "dir" : "file";
  } catch {
    return undefined;
  }
}

/** The real path of `path`, or of its nearest existing ancestor joined with the rest (symlinks resolved). */
async function realPathOf(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await realPathOf(parent), basename(abs));
  }
}

/**
 * Check `outputDir` before a run writes into it, and clear an earlier run when asked to:
 * - an empty name is refused (it would mean the working directory);
 * - a path that exists and is not a directory is refused;
 * - a directory that is, or contains, one of `modelDirs` is refused;
 * - a directory holding an earlier run (`checkpoint-N/`, `metrics.jsonl`) is refused unless `resume`
 *   (continue it) or `overwriteOutputDir` (remove that run's `checkpoint-N/`, staging directories,
 *   {@link RUN_FILE_NAMES} and `finalFiles`, and nothing else);
 * - a directory without an earlier run that already holds one of `finalFiles` is refused whatever the
 *   options: those files are not prefkit's to overwrite.
 *
 * Other files in the directory are allowed and never touched. Every refusal is a {@link ConfigError} with one
 * line naming the path.
 * @param outputDir the run's output directory (`args.outputDir`).
 * @param options what the run reads, writes and was asked to do.
 * @returns the earlier run's entries and what was removed.
 * @throws ConfigError naming the path and the rule.
 */
export async function prepareOutputDir(outputDir: string, options: OutputDirOptions = {}): Promise<OutputDirReport> {
  const field = options.field ?? "outputDir";
  if (outputDir.trim() === "") {
    throw new ConfigError("is empty: that would write into the working directory; give a directory", { field });
  }
  const kind = await kindOf(outputDir);
  if (kind === "file") throw new ConfigError("exists and is not a directory", { file: outputDir, field });
  const out = await realPathOf(outputDir);
  for (const model of options.modelDirs ?? []) {
    if ((await kindOf(model)) !== "dir") continue;
    const m = await realPathOf(model);
    if (m === out) {
      throw new ConfigError(`is the model directory ${model}: the run would overwrite the model; choose another`, {
        file: outputDir,
        field,
      });
    }
    if (m.startsWith(out.endsWith(sep) ? out : out + sep)) {
      throw new ConfigError(`contains the model directory ${model}; choose an output directory outside it`, {
        file: outputDir,
        field,
      });
    }
  }
  if (kind === undefined) return { previousRun: [], removed: [] };

  const names = (await readdir(outputDir)).sort();
  const finalFiles = new Set(options.finalFiles ?? []);
  const runEntries = names.filter((n) => CHECKPOINT_DIR.test(n) || STAGING.test(n) || RUN_FILE_NAMES.includes(n));
  const hasRun = names.some((n) => CHECKPOINT_DIR.test(n) || RUN_SIGNATURE_FILES.has(n));
  const finalPresent = names.filter((n) => finalFiles.has(n));
  if (!hasRun) {
    if (finalPresent.length > 0) {
      throw new ConfigError(
        `holds ${finalPresent.join(", ")}, which the run would overwrite and no prefkit run wrote; choose an empty or new directory`,
        { file: outputDir, field },
      );
    }
    return { previousRun: [], removed: [] };
  }
  const previousRun = [...runEntries, ...finalPresent].sort();
  if (options.resume) return { previousRun, removed: [] };
  if (!options.overwriteOutputDir) {
    const shown = previousRun.length > 4 ? [...previousRun.slice(0, 4), "…"] : previousRun;
    throw new ConfigError(
      `holds an earlier run (${shown.join(", ")}): resume it (--resume-from-checkpoint, resumeFromCheckpoint) ` +
        "or replace it (--overwrite-output-dir, overwriteOutputDir; removes only prefkit's own files)",
      { file: outputDir, field },
    );
  }
  for (const name of previousRun) await rm(join(outputDir, name), { recursive: true, force: true });
  return { previousRun, removed: previousRun };
}
