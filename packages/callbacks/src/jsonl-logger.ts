/**
 * `JsonlLogger`: every `onLog` event as one line of `metrics.jsonl`.
 * @module
 */
import { appendFile, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Callback, LogPayload, TrainerControl, TrainerState, TrainingArgs } from "@prefkit/core";
import { METRICS_FILE, metricsLine, readMetricsJsonl } from "./metrics-file.js";

/** Options of {@link JsonlLogger}. */
export interface JsonlLoggerOptions {
  /** File to write. Default: `<args.outputDir>/metrics.jsonl`. */
  path?: string;
}

/**
 * Writes one JSON object per log event, `{ "step": N, ...logs }`, with every metric under the
 * name the trainer logged it (TRL's names: `loss`, `grad_norm`, `learning_rate`, `epoch`,
 * `rewards/margins`, `eval_loss`, ...). Non-finite values are written as `null`.
 *
 * A fresh run (step 0 at `onTrainBegin`) starts the file over; a resumed run keeps the records
 * up to the resumed step and appends. Each record is one `appendFile` of a whole line, so a crash
 * leaves at most one partial last line.
 */
export class JsonlLogger implements Callback {
  /** Callback name. */
  readonly name = "JsonlLogger";
  /** The file being written (known from `onTrainBegin`, or from the constructor). */
  path: string | undefined;

  /** @param options where to write. */
  constructor(options: JsonlLoggerOptions = {}) {
    this.path = options.path;
  }

  /** Resolves the path and starts the file (fresh run) or trims it to the resumed step. */
  async onTrainBegin(args: Readonly<TrainingArgs>, state: Readonly<TrainerState>): Promise<void> {
    this.path ??= join(args.outputDir, METRICS_FILE);
    await mkdir(dirname(this.path), { recursive: true });
    let keep = "";
    if (state.globalStep > 0) {
      try {
        const old = await readMetricsJsonl(this.path);
        keep = old
          .filter((r) => r.step <= state.globalStep)
          .map(metricsLine)
          .join("");
      } catch {
        keep = "";
      }
    }
    await writeFile(this.path, keep);
  }

  /** Appends `{ step, ...logs }`. */
  async onLog(
    args: Readonly<TrainingArgs>,
    state: Readonly<TrainerState>,
    _control: TrainerControl,
    payload: LogPayload,
  ): Promise<void> {
    this.path ??= join(args.outputDir, METRICS_FILE);
    await mkdir(dirname(this.path), { recursive: true });
    await appendFile(this.path, metricsLine({ step: state.globalStep, ...payload.logs }));
  }
}
