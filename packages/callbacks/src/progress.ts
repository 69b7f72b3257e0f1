/**
 * `ProgressCallback`: a progress bar with ETA and live loss in a terminal, plain lines elsewhere.
 * @module
 */
import cliProgress from "cli-progress";
import type { Callback, LogPayload, TrainerControl, TrainerState, TrainingArgs } from "@prefkit/core";

/** Options of {@link ProgressCallback}. */
export interface ProgressCallbackOptions {
  /** Where to draw / write. Default `process.stdout`. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /**
   * Draw the bar (true) or write plain lines (false). Default: whether `stream` is a TTY, so CI
   * logs get plain lines with no control characters.
   */
  tty?: boolean;
  /** Text before the bar and at the start of each plain line. Default `"train"`. */
  label?: string;
  /** Clock in milliseconds, for tests. Default `performance.now`. */
  now?: () => number;
}

/** `1234` → `"20m34s"`, `59.4` → `"59s"`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

/** A metric for display: 4 significant digits, exponent form for small/large magnitudes. */
export function formatMetric(v: number | undefined): string {
  if (v === undefined) return "-";
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
}

/**
 * Training progress. In a TTY it draws a `cli-progress` bar — steps done, percentage, ETA, and the
 * latest logged `loss` and learning rate, updated at every optimizer step. When the stream is not
 * a TTY (CI, a pipe, a file) it writes one plain line per log event instead, e.g.
 * `train step 10/100 (10%) loss=0.6931 lr=1e-06 elapsed=3s eta=27s`, with no control characters.
 */
export class ProgressCallback implements Callback {
  /** Callback name. */
  readonly name = "ProgressCallback";
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly tty: boolean;
  private readonly label: string;
  private readonly now: () => number;
  private bar: cliProgress.SingleBar | undefined;
  private started = 0;
  private startStep = 0;
  private loss: number | undefined;
  private lr: number | undefined;

  /** @param options stream, mode and label. */
  constructor(options: ProgressCallbackOptions = {}) {
    this.stream = options.stream ?? process.stdout;
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.label = options.label ?? "train";
    this.now = options.now ?? (() => performance.now());
  }

  /** Starts the bar (TTY) or writes the plan line. */
  onTrainBegin(_args: Readonly<TrainingArgs>, state: Readonly<TrainerState>): void {
    this.started = this.now();
    this.startStep = state.globalStep;
    if (this.tty) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream,
          format: `${this.label} {bar} {percentage}% | {value}/{total} steps | ETA {eta_formatted} | loss {loss} | lr {lr}`,
          etaBuffer: 20,
          hideCursor: true,
          clearOnComplete: false,
          fps: 10,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(state.maxSteps, state.globalStep, { loss: "-", lr: "-" });
    } else {
      const from = state.globalStep > 0 ? ` from step ${state.globalStep}` : "";
      this.write(`${this.label}: ${state.maxSteps} steps${from}`);
    }
  }

  /** Advances the bar. */
  onStepEnd(_args: Readonly<TrainingArgs>, state: Readonly<TrainerState>): void {
    this.bar?.update(state.globalStep, { loss: formatMetric(this.loss), lr: formatMetric(this.lr) });
  }

  /** Records the live loss; in plain mode writes a progress line (eval logs get their own line). */
  onLog(
    _args: Readonly<TrainingArgs>,
    state: Readonly<TrainerState>,
    _control: TrainerControl,
    payload: LogPayload,
  ): void {
    const logs = payload.logs;
    if (logs["loss"] !== undefined) this.loss = logs["loss"];
    if (logs["learning_rate"] !== undefined) this.lr = logs["learning_rate"];
    else if (logs["lr"] !== undefined) this.lr = logs["lr"];
    if (this.bar) {
      this.bar.update(state.globalStep, { loss: formatMetric(this.loss), lr: formatMetric(this.lr) });
      return;
    }
    const step = state.globalStep;
    const total = state.maxSteps;
    const pct = total > 0 ? Math.floor((100 * step) / total) : 0;
    const elapsed = (this.now() - this.started) / 1000;
    const done = step - this.startStep;
    const eta = done > 0 ? (elapsed / done) * (total - step) : Number.NaN;
    const evalKeys = Object.keys(logs).filter((k) => k.startsWith("eval_"));
    if (evalKeys.length > 0) {
      const parts = evalKeys.filter((k) => !/_(runtime|samples_per_second|steps_per_second)$/.test(k));
      this.write(`${this.label} step ${step}/${total} ${parts.map((k) => `${k}=${formatMetric(logs[k])}`).join(" ")}`);
      return;
    }
    if (logs["loss"] === undefined) {
      if (logs["train_loss"] !== undefined) {
        this.write(
          `${this.label} done: ${step} steps in ${formatDuration(elapsed)}, train_loss=${formatMetric(logs["train_loss"])}`,
        );
      }
      return;
    }
    this.write(
      `${this.label} step ${step}/${total} (${pct}%) loss=${formatMetric(this.loss)} lr=${formatMetric(this.lr)} ` +
        `elapsed=${formatDuration(elapsed)} eta=${formatDuration(eta)}`,
    );
  }

  /** Stops the bar. */
  onTrainEnd(_args: Readonly<TrainingArgs>, state: Readonly<TrainerState>): void {
    if (this.bar) {
      this.bar.update(state.globalStep, { loss: formatMetric(this.loss), lr: formatMetric(this.lr) });
      this.bar.stop();
      this.bar = undefined;
    }
  }

  private write(line: string): void {
    this.stream.write(`${line}\n`);
  }
}
