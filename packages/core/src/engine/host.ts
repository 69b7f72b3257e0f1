/**
 * What the engine needs to know about its host, so that the same code runs under Node and in a
 * browser bundle (where `process` and Node's built-ins do not exist).
 * @module
 */

/** True under Node.js (and Node-compatible runtimes), false in a browser or web worker. */
export const IS_NODE: boolean =
  typeof globalThis.process !== "undefined" && typeof globalThis.process.versions?.node === "string";

/** An environment variable under Node; always `undefined` in a browser. */
export function hostEnv(name: string): string | undefined {
  return IS_NODE ? globalThis.process.env[name] : undefined;
}
