/**
 * vitest setup: with PREFKIT_NATIVE=1 every test file starts on the engine a user gets by default with
 * the native addon built (`initEngine()`: cpu + native-blas and its fused decoder), so the whole suite
 * exercises the fast path; tests that pick a backend themselves still do. The engine-selection tests
 * (core's `test/engine`, `test/optim/adamw-native`) set up their own engines and are left alone.
 * Without PREFKIT_NATIVE=1 nothing is initialised here and tests run as they always did (portable path).
 */
import { initEngine } from "@prefkit/core";
import { expect } from "vitest";

const file = expect.getState().testPath ?? "";
const selfManaged = /packages\/core\/test\/(engine\/|optim\/adamw-native)/.test(file);
if (process.env["PREFKIT_NATIVE"] === "1" && !selfManaged) await initEngine();
