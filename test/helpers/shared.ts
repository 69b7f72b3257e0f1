/**
 * Access to the read-only assets in `../shared` (next to the repo root).
 * Locally a missing asset skips the test with a clear reason; under `CI=true`,
 * where `../shared` is always present, a missing asset fails the test.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** `../shared` next to the repository. */
export const SHARED_ROOT = resolve(REPO_ROOT, "..", "shared");

const inCI = process.env.CI === "true";

/**
 * Resolve a path inside `../shared`. Returns the absolute path if it exists.
 * If it is missing: throws under CI; otherwise logs why and returns `undefined`,
 * so the caller can `it.skipIf(!path)`.
 */
export function sharedPath(relative: string): string | undefined {
  const p = join(SHARED_ROOT, relative);
  if (existsSync(p)) return p;
  const msg = `shared asset missing: ${p}`;
  if (inCI) throw new Error(`${msg} (CI=true requires ../shared)`);
  console.warn(`[skip] ${msg}; tests that need it are skipped`);
  return undefined;
}
