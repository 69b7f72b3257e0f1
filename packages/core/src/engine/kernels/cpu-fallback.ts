/**
 * Kernels wasm lacks, borrowed from the cpu backend: inputs are copied to cpu, the cpu
 * kernel runs, and outputs are copied back onto the wasm heap. Slow but correct; meant
 * for rarely used ops (`Einsum`) so a model never dies with "kernel not registered".
 * @module
 */
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import { defineKernelPlugin, type KernelPlugin } from "../plugin.js";
import { tf } from "../tf.js";

type KernelArgs = Parameters<tf.KernelFunc>[0];

interface CpuBackendLike {
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId;
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

function borrowFromCpu(kernelName: string): tf.KernelFunc {
  return (args: KernelArgs) => {
    const wasm = args.backend as BackendWasm;
    const cpu = tf.findBackend("cpu") as unknown as CpuBackendLike | null;
    const cpuKernel = tf.getKernel(kernelName, "cpu");
    if (cpu == null || cpuKernel === undefined) {
      throw new Error(`${kernelName}: not available on wasm, and no cpu kernel to borrow`);
    }
    const moved: tf.TensorInfo[] = [];
    const toCpu = (t: tf.TensorInfo): tf.TensorInfo => {
      const info = { dataId: cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
      moved.push(info);
      return info;
    };
    const inputs: Record<string, tf.TensorInfo> = {};
    for (const [key, t] of Object.entries(args.inputs)) if (t !== undefined) inputs[key] = toCpu(t);
    try {
      // Kernels such as Einsum take their inputs as an array.
      const cpuInputs = Array.isArray(args.inputs) ? Object.values(inputs) : inputs;
      const result = cpuKernel.kernelFunc({ ...args, inputs: cpuInputs as tf.NamedTensorInfoMap, backend: cpu });
      const outputs = Array.isArray(result) ? result : [result];
      const back = outputs.map((o) => {
        const values = cpu.readSync(o.dataId);
        cpu.disposeData(o.dataId, true);
        return wasm.makeOutput(o.shape, o.dtype, undefined, values);
      });
      return Array.isArray(result) ? back : back[0]!;
    } finally {
      for (const t of moved) cpu.disposeData(t.dataId, true);
    }
  };
}

/**
 * Kernels that wasm lacks and a decoder may use, borrowed from cpu: currently `Einsum`
 * (which has no gradient in TF.js on any backend).
 */
export function wasmCpuFallbackPlugin(): KernelPlugin {
  const names = [tf.Einsum];
  return defineKernelPlugin({
    name: "prefkit-wasm-cpu-fallback",
    backend: "wasm",
    kernels: names.map((kernelName) => ({ kernelName, build: () => ({ kernelFunc: borrowFromCpu(kernelName) }) })),
  });
}
