/**
 * `ReportCallback`: write the training report when training ends.
 * @module
 */
import type { Callback, TrainerState, TrainingArgs } from "@prefkit/core";
import { type ReportResult, type WriteReportOptions, writeReport } from "./write-report.js";

/** Options of {@link ReportCallback}. */
export interface ReportCallbackOptions extends Omit<WriteReportOptions, "records"> {
  /** Run directory to write into. Default `args.outputDir`. */
  runDir?: string;
}

/**
 * Writes `report.html` and the charts (see {@link writeReport}) into the run directory at
 * `onTrainEnd`, from the trainer's own log history (`state.logHistory`), so it needs no logger.
 * `prefkit report <runDir>` does the same later from `metrics.jsonl`.
 */
export class ReportCallback implements Callback {
  /** Callback name. */
  readonly name = "ReportCallback";
  /** What the last report wrote, once written. */
  result: ReportResult | undefined;
  private readonly options: ReportCallbackOptions;

  /** @param options run directory, charts and title. */
  constructor(options: ReportCallbackOptions = {}) {
    this.options = options;
  }

  /** Writes the report. */
  async onTrainEnd(args: Readonly<TrainingArgs>, state: Readonly<TrainerState>): Promise<void> {
    const { runDir, ...rest } = this.options;
    this.result = await writeReport(runDir ?? args.outputDir, { ...rest, records: state.logHistory });
  }
}
