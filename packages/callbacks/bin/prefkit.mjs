#!/usr/bin/env node
// `prefkit` CLI entry point (npm bin). Runs the built package: `npm run build` first in a checkout.
import { runCli } from "../dist/cli/main.js";

const code = await runCli(process.argv.slice(2));
// Flush stdout/stderr, then exit even if a backend left worker threads behind.
process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
