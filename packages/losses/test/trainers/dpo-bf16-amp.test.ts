/**
 * Issue 15 acceptance: "DPO losses over 5 steps stay within a derived bound of the fp32 run", for bf16 AMP
 * (`AmpPlugin({ dtype: "bfloat16", compute: "bfloat16" })`) with LoRA on a bf16 checkpoint, on the fast
 * path (the fused decoder), against the same run in fp32 (same checkpoint, seed, data, 5 steps).
 *
 * The bound, derived. bf16 compute rounds every operand of the products it runs in bf16 (the input of each
 * projection, LoRA's x·Aᵀ before ·Bᵀ, the trainable LoRA weights, the LM head's input where the head
 * runs in bf16; the frozen weights are bf16 already) and sums the exact products in fp32. Rounding to
 * nearest moves an operand a by δa, |δa| ≤ u·|a|, u = 2⁻⁸ (8 significant bits). The fp32 sums of a
 * K-term dot product add at most γ_K·Σ|a||b| (γ_K ≈ K·2⁻²⁴ < 4e-6 for K ≤ 64): negligible next to u.
 * To first order in u, the DPO batch loss L at fixed weights then moves by
 *     ΔL = Σ_a (a·∂L/∂a)·(δa/a),   |δa/a| ≤ u,
 * summed over the policy pass and the reference pass (adapters off) separately. a·∂L/∂a carries the
 * whole propagation: through the layers to the logits, from a logit to a token log-prob
 * (|Δ log p_y| ≤ |Δz_y| + Σ_j p_j|Δz_j|), summed over the completion tokens into the sequence log-probs,
 * into the margin m = (chosen − ref chosen) − (rejected − ref rejected) and through the sigmoid loss
 * (|∂L/∂m| = β·σ(−βm) ≤ β per pair, averaged over the batch). The test measures a·∂L/∂a exactly: the fp32
 * tfjs ops with a factor (1 + e) on every such operand, ∂L/∂e read off the tape. Two bounds follow:
 *   worst case (every rounding aligned):      E₁ = u·Σ|a·∂L/∂a|
 *   probabilistic (roundings independent, zero-mean, Hoeffding; Higham & Mary 2019's model):
 *                                             E₂ = λ·u·(Σ(a·∂L/∂a)²)^½, λ = 5.4: P(|ΔL| > E₂) < 2e⁻¹⁴·⁶ ≈ 1e-6.
 * Over the steps the runs' weights part (bf16 gradients give other AdamW updates); that moves the loss by
 * D_s = Σ_θ |∂L/∂θ(θ_s)|·|θ̃_s − θ_s| to first order (θ the fp32 run's LoRA weights, θ̃ the bf16 run's,
 * both recorded at each step). Per step s, with 1.25 covering second-order terms (O(u²), O(|θ̃ − θ|²)):
 *     |L̃_s − L_s| ≤ 1.25·(E₂(θ̃_s) + D_s)   (and ≤ 1.25·(E₁(θ̃_s) + D_s), which holds with certainty).
 *
 * Loss bounds cannot tell a misplaced bf16 rounding from the legitimate ones: on this model both move the
 * loss by ~1e-4–1e-3. What does is the emulation: the same fp32 tfjs ops with exactly those operands
 * rounded to bf16 reproduce the fused decoder's bf16 loss to fp32 summation-order noise (≤ 1e-7 measured;
 * checked to 2e-6). Rounding anything else (the logits, the log-softmax outputs, the sequence log-prob
 * sums) moves the loss by more than that at every step after the first: the test computes each and checks
 * that the emulation check would catch it.
 *
 * On the portable path (the tfjs ops, `useNativeDecoder = false`) bf16 compute does not apply (the tfjs
 * ops have no bf16 arithmetic): there the AMP run must equal the fp32 run (checked to 1e-6).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Callback,
  initEngine,
  nativeBlasPlugin,
  Rng,
  shutdownEngine,
  type TokenizedPreference,
  tf,
} from "@prefkit/core";
import { DPOTrainer } from "@prefkit/losses";
import {
  AmpPlugin,
  AutoModelForCausalLM,
  bf16ToFloat32,
  float32ToBf16,
  getPeftModel,
  LoraLinear,
  LoraPlugin,
  type PeftModelForCausalLM,
} from "@prefkit/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skipWithoutNativeDecoder } from "../../../models/test/modeling/native-helpers.js";

/** bf16's unit roundoff (round to nearest even, 8 significant bits). */
const U = 2 ** -8;
const BETA = 0.1;
const STEPS = 5;
const CONFIG = {
  model_type: "llama",
  vocab_size: 64,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  tie_word_embeddings: false,
  initializer_range: 0.2,
} as const;
const LORA = { r: 4, loraAlpha: 8, targetModules: "all-linear" as const };
const LORA_SEED = 3;
/** fp32 summation-order noise between the fused decoder and the tfjs ops on the same rounded operands. */
const EMULATION_TOLERANCE = 2e-6;

/** Four pairs, prompts of 3–5 tokens, completions of 5–8 (ids 3…63). */
function pairs(): TokenizedPreference[] {
  const r = new Rng(11);
  const seq = (n: number) => Array.from({ length: n }, () => 3 + r.int(61));
  return Array.from({ length: 4 }, () => ({
    promptIds: [1, ...seq(2 + r.int(3))],
    chosenIds: seq(5 + r.int(4)),
    rejectedIds: seq(5 + r.int(4)),
  }));
}

const SKIP = skipWithoutNativeDecoder("bf16 AMP DPO against fp32 (fast path)");

let dir: string;
beforeAll(async () => {
  if (SKIP) await tf.setBackend("cpu");
  else await initEngine({ backend: "cpu", threads: 2, plugins: [nativeBlasPlugin()] });
  dir = await mkdtemp(join(tmpdir(), "prefkit-dpo-bf16-amp-"));
  const model = AutoModelForCausalLM.fromConfig(CONFIG, { seed: 5 });
  await model.savePretrained(dir, { dtype: "BF16" });
  model.dispose();
});
afterAll(async () => {
  if (!SKIP) shutdownEngine();
  await rm(dir, { recursive: true, force: true });
});

interface Run {
  losses: number[];
  /** The trainable (LoRA) values at the start of each step. */
  snapshots: Float32Array[][];
}

/** 5 LoRA DPO steps on the bf16 checkpoint: fp32 (loaded as float32) or bf16 AMP (loaded as bf16). */
async function train(compute: "float32" | "bfloat16", native: boolean): Promise<Run> {
  const model = await AutoModelForCausalLM.fromPretrained(dir, compute === "bfloat16" ? { dtype: "bfloat16" } : {});
  model.decoder.useNativeDecoder = native;
  const lora = new LoraPlugin(LORA, { seed: LORA_SEED });
  const plugins = compute === "bfloat16" ? [lora, new AmpPlugin({ dtype: "bfloat16", compute })] : [lora];
  const snapshots: Float32Array[][] = [];
  const capture: Callback = {
    name: "capture",
    onStepBegin: () => {
      const vars = (lora.model as PeftModelForCausalLM).trainableVariables();
      snapshots.push(vars.map((v) => (v.dataSync() as Float32Array).slice()));
    },
  };
  const t = new DPOTrainer({
    model,
    args: {
      outputDir: join(dir, "run"),
      saveStrategy: "no",
      loggingSteps: 1,
      learningRate: 5e-3,
      lrSchedulerType: "constant",
      maxSteps: STEPS,
      perDeviceTrainBatchSize: 4,
      beta: BETA,
      seed: 0,
    },
    trainDataset: pairs(),
    plugins,
    callbacks: [capture],
  });
  await t.train();
  if (compute === "bfloat16") expect((lora.model as PeftModelForCausalLM).computeDtype).toBe("bfloat16");
  const losses = t.state.logHistory.filter((e) => "loss" in e).map((e) => e["loss"]!);
  t.dispose();
  (lora.model as PeftModelForCausalLM).dispose();
  return { losses, snapshots };
}

/** The batch as right-padded rows: chosen rows then rejected rows, with their completion masks. */
function batch(): { ids: number[][]; completion: number[][] } {
  const rows = pairs().flatMap((p) => [
    { prompt: p.promptIds, completion: p.chosenIds },
    { prompt: p.promptIds, completion: p.rejectedIds },
  ]);
  const ordered = [...rows.filter((_, i) => i % 2 === 0), ...rows.filter((_, i) => i % 2 === 1)];
  const len = Math.max(...ordered.map((r) => r.prompt.length + r.completion.length));
  const pad = (a: number[]) => [...a, ...new Array<number>(len - a.length).fill(0)];
  return {
    ids: ordered.map((r) => pad([...r.prompt, ...r.completion])),
    completion: ordered.map((r) => pad([...r.prompt.map(() => 0), ...r.completion.map(() => 1)])),
  };
}

/**
 * A fp32 model for the bound (the tfjs ops) whose operands of bf16-computed products can be scaled by
 * (1 + e): `scales` is consumed in call order while set; `shapes` records the operands' shapes.
 */
class Probe {
  readonly peft: PeftModelForCausalLM;
  scales: tf.Tensor[] | undefined;
  /** Emulate bf16 compute: round every operand to bf16 (the sums stay fp32). */
  emulate = false;
  /** Whether the emulation rounds the LM head's input too. */
  roundHead = true;
  shapes: number[][] = [];
  private next = 0;

  private constructor(peft: PeftModelForCausalLM) {
    this.peft = peft;
    peft.baseModel.decoder.useNativeDecoder = false;
    for (const m of peft.baseModel.linearModules().values()) {
      if (m instanceof LoraLinear) {
        m.apply = (x: tf.Tensor) => {
          const xs = this.scale(x);
          const y = m.base.apply(xs);
          if (!m.active) return y;
          const low = this.scale(tf.matMul(tf.reshape(xs, [-1, m.inFeatures]) as tf.Tensor2D, m.loraA, false, true));
          const delta = tf.mul(tf.matMul(low as tf.Tensor2D, m.loraB, false, true), m.scaling);
          return tf.add(y, tf.reshape(delta, y.shape));
        };
      } else {
        const apply = m.apply.bind(m);
        m.apply = (x: tf.Tensor) => apply(this.emulate && !this.roundHead ? x : this.scale(x));
      }
    }
  }

  static async create(values: Float32Array[]): Promise<Probe> {
    const base = await AutoModelForCausalLM.fromPretrained(dir);
    const peft = getPeftModel(base, LORA, { seed: LORA_SEED });
    const probe = new Probe(peft);
    probe.load(values);
    return probe;
  }

  load(values: Float32Array[]): void {
    const vars = this.peft.trainableVariables();
    vars.forEach((v, i) => {
      tf.tidy(() => v.assign(tf.tensor(values[i]!, v.shape)));
    });
  }

  private scale(a: tf.Tensor): tf.Tensor {
    if (this.emulate) return roundBf16(a);
    if (this.scales === undefined) {
      this.shapes.push(a.shape);
      return a;
    }
    return tf.mul(a, tf.add(1, this.scales[this.next++]!));
  }

  /** Completion log-prob sums of every row, policy (adapters on) or reference (off); per-token values `round`ed. */
  sums(reference: boolean, round?: Rounding): tf.Tensor1D {
    const { ids, completion } = batch();
    // No tidy here: the gradient tape needs the intermediates (the callers tidy).
    const run = () => {
      let logits = this.peft.forward({ inputIds: ids }).logits;
      if (round === "logits") logits = roundBf16(logits) as tf.Tensor3D;
      const [b, t, v] = logits.shape;
      const logp = tf.logSoftmax(tf.slice(logits, [0, 0, 0], [b, t - 1, v]));
      const next = tf.oneHot(
        tf.tensor2d(
          ids.map((r) => r.slice(1)),
          undefined,
          "int32",
        ),
        v,
      );
      let tok = tf.sum(tf.mul(logp, next), -1);
      if (round === "logp") tok = roundBf16(tok);
      const sums = tf.sum(tf.mul(tok, tf.tensor2d(completion.map((r) => r.slice(1)))), -1) as tf.Tensor1D;
      return round === "sums" ? (roundBf16(sums) as tf.Tensor1D) : sums;
    };
    return reference ? this.peft.withAdaptersDisabled(run) : run();
  }

  /** DPO's sigmoid loss (batch mean) from policy and reference sums. */
  static loss(policy: tf.Tensor1D, reference: tf.Tensor1D): tf.Scalar {
    const n = policy.shape[0] / 2;
    const ratio = tf.sub(policy, reference);
    const margin = tf.sub(tf.slice(ratio, 0, n), tf.slice(ratio, n, n));
    return tf.mean(tf.softplus(tf.mul(margin, -BETA))) as tf.Scalar; // −log σ(βm)
  }

  /**
   * The loss with bf16 compute emulated in the tfjs ops at the loaded weights: LoRA weights and the
   * projections' operands rounded to bf16, the LM head's input too when `head`.
   */
  emulatedBf16(head: boolean): number {
    const vars = this.peft.trainableVariables();
    const saved = vars.map((v) => (v.dataSync() as Float32Array).slice());
    this.load(saved.map((a) => bf16ToFloat32(float32ToBf16(a))));
    this.roundHead = head;
    this.emulate = true;
    const out = this.value();
    this.emulate = false;
    this.load(saved);
    return out;
  }

  value(round?: Rounding): number {
    return tf.tidy(() => Probe.loss(this.sums(false, round), this.sums(true, round)).dataSync()[0]!);
  }

  /**
   * Σ|a·∂L/∂a| and Σ(a·∂L/∂a)² over the operands of one pass (policy or reference), the other pass held
   * fixed: the sensitivities of L to a relative change of each operand.
   */
  private operandSensitivity(reference: boolean): Sensitivity {
    const other = tf.tidy(() => this.sums(!reference));
    this.shapes = [];
    tf.tidy(() => {
      this.sums(reference); // records the operands' shapes
    });
    const zeros = this.shapes.map((s) => tf.zeros(s));
    const grads = tf.grads((...es: tf.Tensor[]) => {
      this.scales = es;
      this.next = 0;
      const mine = this.sums(reference);
      return reference ? Probe.loss(other, mine) : Probe.loss(mine, other);
    })(zeros);
    this.scales = undefined;
    const out = sensitivity(grads);
    tf.dispose([other, ...zeros, ...grads]);
    return out;
  }

  /** The gradient of the fp32 loss with respect to the trainable (LoRA) weights. */
  private weightGrads(): { vars: tf.Variable[]; grads: tf.Tensor[] } {
    const vars = this.peft.trainableVariables();
    const { value, grads } = tf.variableGrads(() => Probe.loss(this.sums(false), this.sums(true)), vars);
    value.dispose();
    return { vars, grads: vars.map((v) => grads[v.name]!) };
  }

  /**
   * The sensitivities of L to relative changes of every operand bf16 compute rounds at the loaded weights:
   * both passes' activations and the LoRA weights.
   */
  roundingSensitivity(): Sensitivity {
    const { vars, grads } = this.weightGrads();
    const scaled = vars.map((v, i) => tf.mul(grads[i]!, v));
    const weights = sensitivity(scaled);
    tf.dispose([...grads, ...scaled]);
    const parts = [this.operandSensitivity(false), this.operandSensitivity(true), weights];
    return { l1: parts.reduce((a, p) => a + p.l1, 0), l2sq: parts.reduce((a, p) => a + p.l2sq, 0) };
  }

  /** D: Σ|∂L/∂θ|·|θ̃ − θ| at the loaded weights θ, toward `other`. */
  drift(other: Float32Array[]): number {
    const { vars, grads } = this.weightGrads();
    let d = 0;
    vars.forEach((v, i) => {
      d += tf.tidy(
        () => tf.sum(tf.mul(tf.abs(grads[i]!), tf.abs(tf.sub(tf.tensor(other[i]!, v.shape), v)))).dataSync()[0]!,
      );
    });
    tf.dispose(grads);
    return d;
  }

  dispose(): void {
    this.peft.dispose();
  }
}

/** Where a mistaken bf16 rounding is simulated: the logits, the token log-probs, the sequence sums. */
type Rounding = "logits" | "logp" | "sums";

interface Sensitivity {
  /** Σ|a·∂L/∂a|. */
  l1: number;
  /** Σ(a·∂L/∂a)². */
  l2sq: number;
}

function sensitivity(ts: tf.Tensor[]): Sensitivity {
  let l1 = 0;
  let l2sq = 0;
  for (const t of ts) {
    const [a, b] = tf.tidy(() => [tf.sum(tf.abs(t)), tf.sum(tf.square(t))]);
    l1 += a!.dataSync()[0]!;
    l2sq += b!.dataSync()[0]!;
    tf.dispose([a!, b!]);
  }
  return { l1, l2sq };
}

/** Round every element to bf16 (as a bf16 log-softmax would hand back its outputs). */
function roundBf16(t: tf.Tensor): tf.Tensor {
  return tf.tensor(bf16ToFloat32(float32ToBf16(t.dataSync() as Float32Array)), t.shape);
}

describe("bf16 AMP DPO (LoRA on a bf16 checkpoint) against the fp32 run, 5 steps", () => {
  it.skipIf(SKIP)(
    "fast path: per-step |loss_bf16 − loss_fp32| within the derived bound; the bf16 run is exactly the emulated bf16 rounding",
    async () => {
      const fp32 = await train("float32", true);
      const bf16 = await train("bfloat16", true);
      expect(fp32.losses).toHaveLength(STEPS);
      expect(bf16.losses).toHaveLength(STEPS);
      // Policy = reference at step 0 (lora_B = 0): the same passes with the same roundings: ln 2 in both.
      expect(fp32.losses[0]).toBeCloseTo(Math.LN2, 6);
      expect(bf16.losses[0]).toBeCloseTo(Math.LN2, 6);
      expect(fp32.losses[STEPS - 1]).toBeLessThan(0.4); // it trains
      const probe = await Probe.create(fp32.snapshots[0]!);
      const rows: Array<Record<string, number>> = [];
      for (let s = 0; s < STEPS; s++) {
        // The fp32 run's reference: DPO's loss computed by hand (tfjs ops) at the run's own weights.
        probe.load(fp32.snapshots[s]!);
        const exact = probe.value();
        expect(Math.abs(fp32.losses[s]! - exact), `fp32 step ${s}`).toBeLessThan(1e-5);
        const drift = probe.drift(bf16.snapshots[s]!);
        const misplaced = (["logits", "logp", "sums"] as const).map((r) => Math.abs(probe.value(r) - exact));
        probe.load(bf16.snapshots[s]!);
        const sens = probe.roundingSensitivity();
        const worst = U * sens.l1;
        const likely = 5.4 * U * Math.sqrt(sens.l2sq);
        const deviation = Math.abs(bf16.losses[s]! - fp32.losses[s]!);
        expect(deviation, `step ${s}`).toBeLessThanOrEqual(1.25 * (likely + drift));
        expect(deviation, `step ${s}`).toBeLessThanOrEqual(1.25 * (worst + drift));
        // The fused bf16 loss is the emulated one, the LM head's input rounded too (the 16-bit head runs the
        // native fused pass with bf16 operands, through tryFusedSequenceLogProbs), to fp32 noise; the head
        // left in fp32, or each misplaced rounding, would move it further than that.
        const emulated = [false, true].map((head) => Math.abs(bf16.losses[s]! - probe.emulatedBf16(head)));
        expect(emulated[1]!, `step ${s}`).toBeLessThanOrEqual(EMULATION_TOLERANCE);
        if (s > 0) expect(emulated[0]!, `step ${s}: head in fp32`).toBeGreaterThan(EMULATION_TOLERANCE);
        if (s > 0) for (const m of misplaced) expect(m, `step ${s}`).toBeGreaterThan(EMULATION_TOLERANCE);
        rows.push({
          step: s,
          fp32: fp32.losses[s]!,
          bf16: bf16.losses[s]!,
          deviation,
          bound: 1.25 * (likely + drift),
          worstCaseBound: 1.25 * (worst + drift),
          drift,
          emulationHeadFp32: emulated[0]!,
          emulationHeadBf16: emulated[1]!,
          logitsInBf16: misplaced[0]!,
          logSoftmaxInBf16: misplaced[1]!,
          sumsInBf16: misplaced[2]!,
        });
      }
      console.log(`bf16 AMP vs fp32, 5 LoRA DPO steps: ${JSON.stringify(rows)}`);
      probe.dispose();
    },
  );

  // Full fine-tuning of a bf16-loaded model: the policy's trainable float32 lm_head and the frozen-copy
  // reference's 16-bit head both run the native fused pass with bf16 operands (tryFusedSequenceLogProbs), so
  // policy and reference agree before any update. (When the reference's 16-bit head fell back to the tfjs
  // ops in fp32, the step-0 loss was 0.692770.)
  it.skipIf(SKIP)(
    "fast path, full fine-tuning: policy = frozen-copy reference at step 0 gives ln 2 under bf16 AMP",
    async () => {
      const model = await AutoModelForCausalLM.fromPretrained(dir, { dtype: "bfloat16" });
      const t = new DPOTrainer({
        model,
        args: { outputDir: join(dir, "full"), saveStrategy: "no", loggingSteps: 1, maxSteps: 1, beta: BETA },
        trainDataset: pairs(),
        plugins: [new AmpPlugin({ dtype: "bfloat16", compute: "bfloat16" })],
      });
      await t.train();
      const loss = t.state.logHistory.find((e) => "loss" in e)!["loss"]!;
      t.dispose();
      model.dispose();
      expect(loss).toBeCloseTo(Math.LN2, 6);
    },
  );

  it("portable path (tfjs ops): bf16 compute does not apply, the AMP run equals the fp32 run", async () => {
    const fp32 = await train("float32", false);
    const bf16 = await train("bfloat16", false);
    expect(bf16.losses).toHaveLength(STEPS);
    for (let s = 0; s < STEPS; s++) expect(Math.abs(bf16.losses[s]! - fp32.losses[s]!), `step ${s}`).toBeLessThan(1e-6);
    expect(fp32.losses[0]).toBeCloseTo(Math.LN2, 6);
    expect(fp32.losses[STEPS - 1]).toBeLessThan(Math.LN2 - 1e-3);
  });
});
