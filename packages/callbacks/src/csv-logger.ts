/**
 * `CsvLogger`: the log events as a CSV table.
 * @module
 */
import { join } from "node:path";
import type { Callback, LogPayload, TrainerControl, TrainerState, TrainingArgs } from "@prefkit/core";
import { writeFileAtomic } from "./metrics-file.js";

/** Options of {@link CsvLogger}. */
export interface CsvLoggerOptions {
  /** File to write. Default: `<args.outputDir>/metrics.csv`. */
  path?: string;
}

/** Quote a CSV field when it needs it (RFC 4180). */
function csvField(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

/**
 * Writes every log event as one CSV row: columns `step`, `epoch`, then every metric name (TRL
 * names, in order of first appearance). Since evaluation adds `eval_*` columns mid-run, the file
 * is rewritten (atomically: temp file + rename) on each event; cells a record lacks are empty,
 * non-finite values are written as `NaN`/`Infinity`.
 */
export class CsvLogger implements Callback {
  /** Callback name. */
  readonly name = "CsvLogger";
  /** The file being written. */
  path: string | undefined;
  /** Column names after `step`, in order of first appearance. */
  readonly columns: string[] = ["epoch"];
  private readonly rows: Array<Record<string, number>> = [];

  /** @param options where to write. */
  constructor(options: CsvLoggerOptions = {}) {
    this.path = options.path;
  }

  /** Appends a row and rewrites the file. */
  async onLog(
    args: Readonly<TrainingArgs>,
    state: Readonly<TrainerState>,
    _control: TrainerControl,
    payload: LogPayload,
  ): Promise<void> {
    this.path ??= join(args.outputDir, "metrics.csv");
    for (const k of Object.keys(payload.logs)) if (!this.columns.includes(k)) this.columns.push(k);
    this.rows.push({ step: state.globalStep, ...payload.logs });
    await writeFileAtomic(this.path, this.render());
  }

  /** The CSV text of the rows logged so far. */
  render(): string {
    const cols = ["step", ...this.columns];
    const lines = [cols.map(csvField).join(",")];
    for (const r of this.rows) lines.push(cols.map((c) => (c in r ? String(r[c]) : "")).join(","));
    return `${lines.join("\n")}\n`;
  }
}
