import { DatasetError } from "../errors/index.js";
import type { BadRowPolicy, RowSource } from "./types.js";

/** One dropped row: where it was and why (never its contents; datasets can hold offensive text). */
export interface DroppedRow {
  /** File, if known. */
  file?: string;
  /** 1-based row number. */
  row: number;
  /** Short reason, also the key in {@link DataReport.dropped}. */
  reason: string;
}

/** Counts from one pipeline stage: rows in, rows out, and why the others were dropped. */
export interface DataReport {
  /** Stage name, e.g. `load`, `format`, `hh-rlhf`, `tokenize`. */
  stage: string;
  /** Rows the stage received. */
  rowsIn: number;
  /** Rows the stage produced. */
  rowsOut: number;
  /** Dropped-row counts by reason. */
  dropped: Record<string, number>;
  /** Every dropped row (position and reason only). */
  droppedRows: DroppedRow[];
  /** Rows that were kept but truncated (tokenisation only; 0 elsewhere). */
  truncated: number;
  /** Lines that were not valid UTF-8 (loading only, and only when there were some): how many, and the first. */
  invalidUtf8?: { lines: number; first: number };
}

/** Options shared by every stage that can drop rows. */
export interface BadRowOptions {
  /** `error` (default) throws a {@link DatasetError} naming file and row; `skip` drops and counts the row. */
  onBadRow?: BadRowPolicy;
  /** Called once per stage with a one-line summary when rows were dropped. Default `console.warn`. */
  warn?: (message: string) => void;
}

/** Total number of dropped rows in a report. */
export function droppedCount(report: DataReport): number {
  return report.droppedRows.length;
}

/** One line summarising a report, e.g. `hh-rlhf: 2312 rows in, 2307 out, 5 dropped (diverge before final turn: 5)`. */
export function formatDataReport(report: DataReport): string {
  const reasons = Object.entries(report.dropped)
    .map(([reason, n]) => `${reason}: ${n}`)
    .join(", ");
  const dropped = report.droppedRows.length;
  const truncated = report.truncated > 0 ? `, ${report.truncated} truncated` : "";
  return `${report.stage}: ${report.rowsIn} rows in, ${report.rowsOut} out, ${dropped} dropped${dropped ? ` (${reasons})` : ""}${truncated}`;
}

/** @internal Collects drops for one stage and enforces the bad-row policy. */
export class ReportBuilder {
  readonly report: DataReport;
  constructor(stage: string) {
    this.report = { stage, rowsIn: 0, rowsOut: 0, dropped: {}, droppedRows: [], truncated: 0 };
  }

  /** Record a drop (no policy check: for drops that are always counted, such as over-long prompts). */
  drop(source: RowSource | undefined, reason: string): void {
    this.report.dropped[reason] = (this.report.dropped[reason] ?? 0) + 1;
    const row: DroppedRow = { row: source?.row ?? 0, reason };
    if (source?.file !== undefined) row.file = source.file;
    this.report.droppedRows.push(row);
  }

  /** A malformed row: throw under `error`, otherwise record it as a drop. */
  bad(policy: BadRowPolicy | undefined, source: RowSource | undefined, reason: string, detail: string, field?: string) {
    if ((policy ?? "error") === "error") {
      const loc: { file?: string; row?: number; field?: string } = {};
      if (source?.file !== undefined) loc.file = source.file;
      if (source !== undefined) loc.row = source.row;
      if (field !== undefined) loc.field = field;
      throw new DatasetError(detail, loc);
    }
    this.drop(source, reason);
  }

  /** Finish: emit the summary warning if anything was dropped and return the report. */
  finish(warn: ((message: string) => void) | undefined): DataReport {
    if (this.report.droppedRows.length > 0) (warn ?? console.warn)(formatDataReport(this.report));
    return this.report;
  }

  /**
   * Finish a stage that produced `rowsOut` rows: record the count, warn as {@link finish} does, and refuse
   * a stage that lost every row.
   * @throws DatasetError with `emptyMessage(report)`, naming `file` when known, when `rowsOut` is 0.
   */
  finishRows(
    rowsOut: number,
    warn: ((message: string) => void) | undefined,
    file: string | undefined,
    emptyMessage: (report: DataReport) => string,
  ): DataReport {
    this.report.rowsOut = rowsOut;
    const report = this.finish(warn);
    if (rowsOut === 0) throw new DatasetError(emptyMessage(report), file === undefined ? {} : { file });
    return report;
  }
}
