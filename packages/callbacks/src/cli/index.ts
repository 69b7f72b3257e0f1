/**
 * The `prefkit` CLI: config handling, exit codes and the program.
 * @module
 */
export * from "./config.js";
export * from "./config-docs.js";
export * from "./exit-codes.js";
export type { CliIo } from "./common.js";
export { buildProgram, runCli } from "./main.js";
