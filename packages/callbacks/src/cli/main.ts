import {
  CheckpointError,
  ConfigError,
  DatasetError,
  DivergenceError,
  PrefkitError,
  shutdownEngine,
} from "@prefkit/core";
import { Command, CommanderError } from "commander";
import type { ConfigKind } from "./config.js";
import { EXIT_CODES, EXIT_CODES_HELP } from "./exit-codes.js";
import { CliExit, type CliIo } from "./common.js";
import { envCommand, evalCommand, generateCommand, reportCommand } from "./tools.js";
import { TRAIN_COMMANDS, trainingCommand } from "./train.js";

/** Build the commander program (exported so the help text can be inspected without running it). */
export function buildProgram(io: CliIo, result: { code: number } = { code: 0 }): Command {
  const program = new Command("prefkit")
    .description("prefkit: TRL-style SFT, DPO, reward modelling and PPO in TypeScript")
    .version("0.1.0")
    .showHelpAfterError(false)
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      getOutHelpWidth: () => 120,
      getErrHelpWidth: () => 120,
    })
    .exitOverride();
  for (const kind of Object.keys(TRAIN_COMMANDS) as ConfigKind[]) program.addCommand(trainingCommand(kind, io, result));
  program.addCommand(generateCommand(io));
  program.addCommand(evalCommand(io));
  program.addCommand(reportCommand(io));
  program.addCommand(envCommand(io));
  program.addHelpText("after", `\n${EXIT_CODES_HELP}`);
  // Subcommands added with addCommand do not inherit these settings.
  for (const sub of program.commands) {
    sub.exitOverride().configureOutput(program.configureOutput()).showHelpAfterError(false);
  }
  return program;
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim();

/**
 * Run the CLI on `argv` (without `node` and the script) and return the exit code (see
 * {@link EXIT_CODES}); never calls `process.exit`. Config errors print one line naming the field.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const result = { code: EXIT_CODES.ok as number };
  const program = buildProgram(io, result);
  const command = argv[0] ?? "";
  try {
    await program.parseAsync([...argv], { from: "user" });
    return result.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") {
        return EXIT_CODES.ok;
      }
      return EXIT_CODES.usage; // commander already printed its one-line message
    }
    if (e instanceof CliExit) {
      io.stderr.write(`${e.message}\n`);
      return e.code;
    }
    const prefix = `prefkit ${command}`.trim();
    if (e instanceof ConfigError) {
      io.stderr.write(`${prefix}: config error: ${oneLine(e.message)}\n`);
      return EXIT_CODES.usage;
    }
    if (e instanceof DatasetError) {
      io.stderr.write(`${prefix}: data error: ${oneLine(e.message)}\n`);
      return EXIT_CODES.data;
    }
    if (e instanceof CheckpointError) {
      io.stderr.write(`${prefix}: checkpoint error: ${oneLine(e.message)}\n`);
      return EXIT_CODES.checkpoint;
    }
    if (e instanceof DivergenceError) {
      io.stderr.write(`${prefix}: ${oneLine(e.message)}\n`);
      return EXIT_CODES.diverged;
    }
    if (e instanceof PrefkitError) {
      io.stderr.write(`${prefix}: ${e.name}: ${oneLine(e.message)}\n`);
      return EXIT_CODES.internal;
    }
    io.stderr.write(`${prefix}: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
    return EXIT_CODES.internal;
  } finally {
    shutdownEngine();
  }
}
