/**
 * Exit codes of the `prefkit` CLI.
 * @module
 */

/**
 * What a `prefkit` exit code means:
 * - 0 `ok`: done;
 * - 1 `internal`: an unexpected error (a bug, or an environment problem), with its stack on stderr;
 * - 2 `usage`: a bad command line or config: unknown flag or field, bad value (the message names the field);
 * - 3 `notAvailable`: the command exists but this build cannot run it (e.g. `ppo` before the PPO trainer lands);
 * - 4 `data`: a dataset file or row is malformed (`DatasetError`, naming file and row);
 * - 5 `checkpoint`: a model or checkpoint file is missing or malformed (`CheckpointError`);
 * - 6 `diverged`: training stopped because the loss or gradient norm was not finite (`NanGuardCallback`).
 */
export const EXIT_CODES = {
  ok: 0,
  internal: 1,
  usage: 2,
  notAvailable: 3,
  data: 4,
  checkpoint: 5,
  diverged: 6,
} as const;

/** The help text listing {@link EXIT_CODES}. */
export const EXIT_CODES_HELP = `Exit codes:
  0  done
  1  unexpected error (stack trace on stderr)
  2  bad command line or config value (the message names the field and what it accepts)
  3  command not available in this build (e.g. ppo before the PPO trainer lands)
  4  bad dataset file or row (the message names file and row)
  5  bad model or checkpoint file
  6  training diverged: loss or grad_norm not finite (NanGuardCallback stopped it)`;
