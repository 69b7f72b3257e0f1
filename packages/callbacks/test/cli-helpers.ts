// Running the built `prefkit` bin as a user would (`npx prefkit`), for the CLI tests.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../../../test/helpers/shared.js";

/** The npm bin. */
export const BIN = join(REPO_ROOT, "packages/callbacks/bin/prefkit.mjs");
/** What the bin runs: the build must exist (CI builds before testing). */
export const DIST = join(REPO_ROOT, "packages/callbacks/dist/cli/main.js");

/** Run `prefkit args…` in `cwd` (default: the repository root) with one thread; exit code and output. */
export function prefkit(args: string[], cwd = REPO_ROOT) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, PREFKIT_THREADS: "1" },
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
