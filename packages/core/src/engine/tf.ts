/**
 * The one TensorFlow.js instance prefkit uses. Every package imports `tf` from
 * `@prefkit/core`, never `@tensorflow/tfjs-core` directly, so there is exactly one engine
 * and gradients are always registered.
 *
 * Why the union package: in Node, `@tensorflow/tfjs-core` resolves to a CommonJS bundle
 * that registers no gradients, and tfjs-core's `register_all_gradients` exists only as
 * extensionless ESM that Node cannot load. `@tensorflow/tfjs`'s Node bundle registers
 * every gradient against the shared tfjs-core instance, whatever the user imported.
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";

export { tf };

// The cpu backend prints a one-time "install tfjs-node" banner on first use; prefkit picks
// tfjs-node itself when it is installed, so the banner is noise. Initialising the backend
// here and clearing its flag keeps it quiet whichever code touches cpu first.
{
  const cpu = tf.findBackend("cpu") as { firstUse?: boolean } | null;
  if (cpu != null && "firstUse" in cpu) cpu.firstUse = false;
}
