/**
 * Shared by the tests of the fused decoder on bf16-loaded models: a LoRA model over a bf16 checkpoint
 * and a weighted completion log-prob with its LoRA gradients.
 */
import { tf } from "@prefkit/core";
import { AutoModelForCausalLM, getPeftModel, type PeftModelForCausalLM } from "@prefkit/models";

/**
 * The bf16 checkpoint in `dir` loaded with `dtype: "bfloat16"`, LoRA (r 4) on every projection from
 * `seed`, and lora_B drawn from `bSeed` (PEFT starts it at zero: the adapters would not matter).
 */
export async function loraOverBf16(dir: string, seed: number, bSeed: number): Promise<PeftModelForCausalLM> {
  const base = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
  const peft = getPeftModel(base, { r: 4, loraAlpha: 8, targetModules: "all-linear" }, { seed });
  for (const [n, v] of (peft as unknown as PeftModelForCausalLM).namedParameters()) {
    if (n.includes("lora_B")) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.2, "float32", bSeed)));
  }
  return peft as unknown as PeftModelForCausalLM;
}

/** Σ rowWeights·(summed completion log-probs; completion from position 3) and its LoRA gradients. */
export function completionValueAndGrads(peft: PeftModelForCausalLM, ids: number[][], rowWeights: number[]) {
  const vars = peft.trainableVariables();
  const completion = ids.map((r) => r.map((_, t) => (t >= 3 ? 1 : 0)));
  const w = tf.tensor1d(rowWeights);
  const { value, grads } = tf.variableGrads(
    () => tf.sum(tf.mul(peft.baseModel.completionLogProbs(ids, completion).sums, w)) as tf.Scalar,
    vars,
  );
  const out = { value: value.dataSync()[0]!, grads: vars.map((v) => grads[v.name]!.dataSync().slice()) };
  tf.dispose([value, w, ...Object.values(grads)]);
  return out;
}
