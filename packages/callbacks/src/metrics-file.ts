/**
 * The run directory's `metrics.jsonl`: one JSON object per log event, with `step` and every
 * logged value under its TRL name (`loss`, `rewards/margins`, `eval_loss`, `objective/kl`, ...).
 * @module
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ConfigError, DatasetError } from "@prefkit/core";

/** File name of the metrics log inside a run directory. */
export const METRICS_FILE = "metrics.jsonl";

/** One line of `metrics.jsonl`: the optimizer step plus the logged values (TRL names). */
export type MetricsRecord = { step: number } & Record<string, number>;

/**
 * Read a `metrics.jsonl` file. Blank lines are skipped; `NaN`/`Infinity` written as `null`
 * come back as `NaN`.
 * @throws DatasetError naming the file and the 1-based line of a malformed record.
 */
export async function readMetricsJsonl(path: string): Promise<MetricsRecord[]> {
  const text = await readFile(path, "utf8");
  const out: MetricsRecord[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`not valid JSON (${(e as Error).message})`, { file: path, row: i + 1 });
    }
    if (typeof obj !== "object" || obj === null || typeof (obj as { step?: unknown }).step !== "number") {
      throw new DatasetError('expected an object with a numeric "step"', { file: path, row: i + 1, field: "step" });
    }
    const rec: Record<string, number> = {};
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
      if (typeof v === "number") rec[k] = v;
      else if (v === null) rec[k] = Number.NaN;
    }
    out.push(rec as MetricsRecord);
  });
  return out;
}

/**
 * The log records of a run directory: `metrics.jsonl` when present, else the `log_history` of
 * the newest `checkpoint-N/trainer_state.json`. Empty when neither exists.
 */
export async function readRunMetrics(runDir: string): Promise<MetricsRecord[]> {
  const file = join(runDir, METRICS_FILE);
  if (existsSync(file)) return readMetricsJsonl(file);
  if (!existsSync(runDir)) return [];
  const checkpoints = (await readdir(runDir))
    .map((name) => ({ name, step: /^checkpoint-(\d+)$/.exec(name)?.[1] }))
    .filter((c): c is { name: string; step: string } => c.step !== undefined)
    .sort((a, b) => Number(b.step) - Number(a.step));
  for (const c of checkpoints) {
    const statePath = join(runDir, c.name, "trainer_state.json");
    if (!existsSync(statePath)) continue;
    const state = JSON.parse(await readFile(statePath, "utf8")) as { log_history?: Array<Record<string, number>> };
    return (state.log_history ?? []).filter((r) => typeof r["step"] === "number") as MetricsRecord[];
  }
  return [];
}

/** One record as a JSON line; non-finite numbers become `null` (JSON has no NaN). */
export function metricsLine(record: Record<string, number>): string {
  return `${JSON.stringify(record, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v))}\n`;
}

/**
 * Refuse to go on when `path` exists and `isOurs` (given its text) says prefkit did not write it. Model
 * cards and reports check their file with it, so a user's own `README.md` or `report.html` is never replaced.
 * @param path - the file about to be written.
 * @param isOurs - recognises a file prefkit wrote from its text.
 * @throws ConfigError naming the file when it exists and is not prefkit's.
 */
export async function assertReplaceable(path: string, isOurs: (text: string) => boolean): Promise<void> {
  let existing: string;
  try {
    existing = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (!isOurs(existing)) {
    throw new ConfigError("exists and was not written by prefkit: not overwriting it; write into another directory", {
      file: path,
    });
  }
}

/**
 * {@link writeFileAtomic}, after {@link assertReplaceable}: writes only over a file prefkit wrote.
 * @throws ConfigError naming the file when it exists and is not prefkit's.
 */
export async function replaceOwnFile(
  path: string,
  data: string | Uint8Array,
  isOurs: (text: string) => boolean,
): Promise<void> {
  await assertReplaceable(path, isOurs);
  await writeFileAtomic(path, data);
}

/** Write `data` to `path` atomically: a temp file in the same directory, then rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}
