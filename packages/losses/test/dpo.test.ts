import { type CausalLM, ConfigError, LossRegistry, rewardMetrics, sequenceLogProbs, tf } from "@prefkit/core";
import {
  createDPOLoss,
  DPO_LOSS_TYPES,
  DPO_LOSSES,
  type DPOLossOptions,
  type DPOLossType,
  defaultDPOConfig,
  dpoInputsFor,
  dpoLoss,
  dpoObjective,
  type FDivergenceType,
  ldTokenWeights,
  mixReferenceWeights,
  type PreferenceBatch,
  PreferenceTask,
  perTokenMeanLogps,
  registerBuiltinLosses,
  resolveDPOConfig,
  validateDPOConfig,
  wpoPairWeights,
} from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { configErrorField, cpuAgainstTorch, dpoOptionsReference, expectClose, reference } from "./helpers.js";

const { inputs } = reference.dpo;
const logpArgs = [inputs.chosenLogps, inputs.rejectedLogps, inputs.refChosenLogps, inputs.refRejectedLogps] as const;
const extras = {
  chosenLengths: inputs.chosenLengths,
  rejectedLengths: inputs.rejectedLengths,
  chosenNll: inputs.chosenNll,
};

interface DPOCase {
  lossType: DPOLossType[];
  labelSmoothing: number;
  fDivergenceType?: FDivergenceType;
  fAlphaDivergenceCoef?: number;
  beta?: number;
  lossWeights?: number[];
  referenceFree?: boolean;
  discopopTau?: number;
  withLengths: boolean;
  meansInput?: boolean;
  losses: number[];
  loss: number;
  chosenRewards: number[];
  rejectedRewards: number[];
}

function optionsOf(c: DPOCase): DPOLossOptions {
  const { lossType, labelSmoothing, fDivergenceType, fAlphaDivergenceCoef, beta, lossWeights, referenceFree } = c;
  return {
    lossType,
    labelSmoothing,
    fDivergenceType,
    fAlphaDivergenceCoef,
    beta,
    lossWeights,
    referenceFree,
    discopopTau: c.discopopTau,
  };
}

cpuAgainstTorch("dpo");

describe("dpoLoss vs TRL (torch float64)", () => {
  it("covers every loss type and f-divergence", () => {
    const cases = reference.dpo.cases as DPOCase[];
    const seen = new Set(cases.map((c) => c.lossType.join("+")));
    for (const t of DPO_LOSS_TYPES) expect(seen.has(t)).toBe(true);
    expect(new Set(cases.map((c) => c.fDivergenceType).filter(Boolean)).size).toBe(4);
  });

  it("matches every reference case to 1e-6", () => {
    const before = tf.memory().numTensors;
    for (const c of reference.dpo.cases as DPOCase[]) {
      const where = `${c.lossType.join("+")} ε=${c.labelSmoothing} ${c.fDivergenceType ?? ""}${c.referenceFree ? " ref-free" : ""}${c.meansInput ? " means" : ""} β=${c.beta ?? 0.1}`;
      tf.tidy(() => {
        const args = c.meansInput
          ? [
              perTokenMeanLogps(inputs.chosenLogps, inputs.chosenLengths),
              perTokenMeanLogps(inputs.rejectedLogps, inputs.rejectedLengths),
              perTokenMeanLogps(inputs.refChosenLogps, inputs.chosenLengths),
              perTokenMeanLogps(inputs.refRejectedLogps, inputs.rejectedLengths),
            ]
          : logpArgs;
        const out = dpoLoss(args[0], args[1], args[2], args[3], optionsOf(c), c.withLengths ? extras : {});
        expectClose(out.losses, c.losses, `${where} losses`);
        expectClose(tf.mean(out.losses), c.loss, `${where} mean`);
        expectClose(out.chosenRewards, c.chosenRewards, `${where} chosenRewards`);
        expectClose(out.rejectedRewards, c.rejectedRewards, `${where} rejectedRewards`);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("dpoInputsFor gives IPO per-token means (same loss as length-normalised scores)", () => {
    tf.tidy(() => {
      const batch = {
        chosenLogps: inputs.chosenLogps,
        rejectedLogps: inputs.rejectedLogps,
        refChosenLogps: inputs.refChosenLogps,
        refRejectedLogps: inputs.refRejectedLogps,
        chosenLengths: inputs.chosenLengths,
        rejectedLengths: inputs.rejectedLengths,
      };
      const ipo = dpoInputsFor("ipo", batch);
      expect(ipo.extras.chosenLengths).toBeUndefined();
      const a = dpoLoss(ipo.chosenLogps, ipo.rejectedLogps, ipo.refChosenLogps, ipo.refRejectedLogps, {
        lossType: "ipo",
      });
      const ipoCase = (reference.dpo.cases as DPOCase[]).find((c) => c.meansInput)!;
      expectClose(a.losses, ipoCase.losses, "dpoInputsFor(ipo)");
      const norm = dpoInputsFor(["sigmoid_norm"], batch);
      const b = dpoLoss(
        norm.chosenLogps,
        norm.rejectedLogps,
        norm.refChosenLogps,
        norm.refRejectedLogps,
        { lossType: "sigmoid_norm" },
        norm.extras,
      );
      const normCase = (reference.dpo.cases as DPOCase[]).find(
        (c) => c.lossType[0] === "sigmoid_norm" && c.fDivergenceType === "reverse_kl" && c.labelSmoothing === 0,
      )!;
      expectClose(b.losses, normCase.losses, "dpoInputsFor(sigmoid_norm)");
    });
  });

  it("step 0 (policy == reference): sigmoid loss is ln 2 and rewards are 0", () => {
    tf.tidy(() => {
      const logps = [-12.5, -40.25, -3.0];
      const out = dpoLoss(logps, [-7.0, -50.5, -9.75], logps, [-7.0, -50.5, -9.75]);
      expectClose(out.losses, [Math.LN2, Math.LN2, Math.LN2], "step0 losses");
      expect(tf.mean(out.losses).dataSync()[0]!.toFixed(6)).toBe("0.693147");
      expectClose(out.chosenRewards, [0, 0, 0], "step0 chosen");
      expectClose(out.rejectedRewards, [0, 0, 0], "step0 rejected");
    });
  });

  it("gradients match torch autograd inside tf.variableGrads", () => {
    for (const g of reference.dpo.grads as {
      lossType: DPOLossType[];
      labelSmoothing: number;
      fDivergenceType: FDivergenceType;
      grads: number[][];
    }[]) {
      const vars = logpArgs.map((x) => tf.variable(tf.tensor1d(x)));
      const { value, grads } = tf.variableGrads(() => {
        const out = dpoLoss(vars[0]!, vars[1]!, vars[2]!, vars[3]!, g, extras);
        return tf.mean(out.losses) as tf.Scalar;
      });
      const where = `grad ${g.lossType[0]} ε=${g.labelSmoothing} ${g.fDivergenceType}`;
      vars.forEach((v, i) => {
        expectClose(grads[v.name]!, g.grads[i]!, `${where} input ${i}`);
      });
      value.dispose();
      tf.dispose(Object.values(grads));
      tf.dispose(vars);
    }
  });
});

describe("DPO Loss objects", () => {
  it("compute returns the mean loss and the per-pair rewards (TRL's rewards/* metrics derive from them)", () => {
    tf.tidy(() => {
      const loss = DPO_LOSSES.sigmoid({ beta: 0.1, lossType: ["ipo"] });
      expect(loss.name).toBe("sigmoid");
      const out = loss.compute({
        chosenLogps: tf.tensor1d(inputs.chosenLogps),
        rejectedLogps: inputs.rejectedLogps,
        refChosenLogps: inputs.refChosenLogps,
        refRejectedLogps: inputs.refRejectedLogps,
      });
      const ref = (reference.dpo.cases as DPOCase[]).find(
        (c) => c.lossType.join() === "sigmoid" && c.labelSmoothing === 0 && c.fDivergenceType === "reverse_kl",
      )!;
      expect(out.loss.rank).toBe(0);
      expectClose(out.loss, ref.loss, "Loss.compute loss");
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const margins = ref.chosenRewards.map((r, i) => r - ref.rejectedRewards[i]!);
      // The loss returns per-pair rewards; the trainer derives TRL's rewards/* metrics from them (core's rewardMetrics).
      expectClose(out.rewards.chosen, ref.chosenRewards, "rewards chosen");
      expectClose(out.rewards.rejected, ref.rejectedRewards, "rewards rejected");
      const metrics = rewardMetrics(out.rewards);
      expectClose(metrics["rewards/chosen"]!, mean(ref.chosenRewards), "rewards/chosen");
      expectClose(metrics["rewards/rejected"]!, mean(ref.rejectedRewards), "rewards/rejected");
      expectClose(metrics["rewards/margins"]!, mean(margins), "rewards/margins");
      expectClose(metrics["rewards/accuracies"]!, mean(margins.map((m) => (m > 0 ? 1 : 0))), "rewards/accuracies");
    });
  });

  it("a weighted mix through createDPOLoss equals the reference mix", () => {
    tf.tidy(() => {
      const ref = (reference.dpo.cases as DPOCase[]).find((c) => c.lossWeights !== undefined)!;
      const loss = createDPOLoss({ lossType: ref.lossType, lossWeights: ref.lossWeights! });
      expect(loss.name).toBe(ref.lossType.join("+"));
      const [chosenLogps, rejectedLogps, refChosenLogps, refRejectedLogps] = logpArgs;
      const out = loss.compute({ chosenLogps, rejectedLogps, refChosenLogps, refRejectedLogps, ...extras });
      expectClose(out.loss, ref.loss, "mix loss");
    });
  });

  it("registerBuiltinLosses registers every DPO type, dpo, and the other methods' losses", () => {
    const names: string[] = [];
    registerBuiltinLosses({ register: (name) => names.push(name) });
    const others = ["dpo", "reward", "nll", "kto", "apo_zero_unpaired", "orpo", "cpo", "ppo", "grpo", "rloo"];
    expect(names.sort()).toEqual([...DPO_LOSS_TYPES, ...others].sort());
  });

  it("fills core's LossRegistry, and a registered factory builds a working loss", () => {
    const registry = new LossRegistry();
    registerBuiltinLosses(registry);
    const loss = registry.create("ipo", { beta: 0.1 });
    expect(loss.name).toBe("ipo");
    tf.tidy(() => {
      const [chosenLogps, rejectedLogps, refChosenLogps, refRejectedLogps] = logpArgs;
      const out = loss.compute({ chosenLogps, rejectedLogps, refChosenLogps, refRejectedLogps, ...extras });
      const ref = (reference.dpo.cases as DPOCase[]).find(
        (c) => c.lossType.join() === "ipo" && c.withLengths && c.fDivergenceType === "reverse_kl" && !c.beta,
      )!;
      expectClose(out.loss, ref.loss, "registry ipo");
    });
  });
});

describe("DPO config and validation", () => {
  it("has TRL's defaults and validates", () => {
    const c = defaultDPOConfig();
    expect(c).toMatchObject({
      beta: 0.1,
      learningRate: 1e-6,
      lossType: ["sigmoid"],
      lossWeights: null,
      maxLength: 1024,
      maxPromptLength: null,
      precomputeRefLogProbs: false,
      disableDropout: true,
      loggingSteps: 10,
      labelSmoothing: 0,
      fDivergenceType: "reverse_kl",
      fAlphaDivergenceCoef: 0.5,
      discopopTau: 0.05,
      referenceFree: false,
    });
    expect(() => validateDPOConfig(c)).not.toThrow();
    expect(defaultDPOConfig()).not.toBe(c);
  });

  it("throws ConfigError naming the field and allowed values", () => {
    const bad = (patch: object, field: string, text: RegExp) => {
      const err = (() => {
        try {
          validateDPOConfig({ ...defaultDPOConfig(), ...patch });
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).field).toBe(field);
      expect((err as ConfigError).message).toMatch(text);
    };
    bad({ lossType: ["sigmoid", "dpo-ish"] }, "lossType[1]", /"hinge"/);
    bad({ lossType: ["exo_pair"] }, "labelSmoothing", /exo_pair/);
    bad({ lossType: ["sigmoid", "ipo"], lossWeights: [1] }, "lossWeights", /2 numbers/);
    bad({ fDivergenceType: "kl" }, "fDivergenceType", /"js_divergence"/);
    bad({ beta: 0 }, "beta", /> 0/);
    bad({ labelSmoothing: 0.5 }, "labelSmoothing", /\[0, 0.5\)/);
    bad({ truncationMode: "middle" }, "truncationMode", /"keep_start"/);
    bad({ maxLength: 0 }, "maxLength", /null or an integer/);
  });

  it("dpoLoss rejects missing extras with ConfigError", () => {
    expect(() => dpoLoss(...logpArgs, { lossType: "sigmoid_norm" })).toThrow(ConfigError);
    expect(() => dpoLoss(...logpArgs, { lossType: "sft" })).toThrow(/chosenNll/);
    expect(() => dpoLoss(...logpArgs, { lossType: "nope" as DPOLossType })).toThrow(ConfigError);
  });
});

interface OptionsCase {
  lossType: DPOLossType[];
  lossWeights: number[];
  ldAlpha: number | null;
  useWeighting: boolean;
  loss: number;
  grad: number[][][];
  chosenLogps: number[];
  rejectedLogps: number[];
  refChosenLogps: number[];
  refRejectedLogps: number[];
  chosenRewards: number[];
  rejectedRewards: number[];
  sequenceWeights?: number[];
  pairWeights?: number[];
}

/** A model whose logits are a fixed variable: the preference task's whole path runs on TRL's reference logits. */
function logitsModel(logits: tf.Variable): CausalLM {
  return {
    config: {} as CausalLM["config"],
    forward: () => ({ logits: tf.add(logits, 0) as tf.Tensor3D }),
    namedParameters: () => new Map([["logits", logits]]),
    trainableVariables: () => [logits],
    savePretrained: async () => {},
    dispose: () => {},
  };
}

describe("LD-DPO (ldAlpha) and WPO (useWeighting) through the preference task vs TRL's _compute_loss (torch float64)", () => {
  const x = dpoOptionsReference.options;
  const b: number = x.batchSize;
  const mask: number[][] = x.completionMask;
  const batch = (): PreferenceBatch => {
    const lengths = mask.map((row) => row.reduce((n, m) => n + m, 0));
    const prompts = mask.map((row) => row.indexOf(1));
    return {
      batchSize: b,
      inputIds: x.inputIds,
      attentionMask: mask.map((row, i) => row.map((_, t) => (t < prompts[i]! + lengths[i]! ? 1 : 0))),
      completionMask: mask,
      promptLengths: prompts,
      completionLengths: lengths,
      rowIndices: Array.from({ length: b }, (_, i) => i),
      split: "train",
    };
  };

  it("ldTokenWeights: shared tokens 1, the longer completion's tail α, prompt and padding 0 (hand-checked)", () => {
    // rows (prompt, completion): chosen (2,4) (3,2) (2,3), rejected (2,2) (3,4) (2,3); the first token of a
    // completion is scored from position 1 on, so the scored lengths are the completion lengths here.
    expect(ldTokenWeights(mask, 0.5)).toEqual([
      [0, 0, 1, 1, 0.5, 0.5, 0],
      [0, 0, 0, 1, 1, 0, 0],
      [0, 0, 1, 1, 1, 0, 0],
      [0, 0, 1, 1, 0, 0, 0],
      [0, 0, 0, 1, 1, 0.5, 0.5],
      [0, 0, 1, 1, 1, 0, 0],
    ]);
  });

  it("matches loss, logged logps, rewards, WPO weights and the gradient w.r.t. the logits for every case", () => {
    const before = tf.memory().numTensors;
    const logits = tf.tidy(() => tf.variable(tf.tensor3d(x.logits), true, "wpo-logits"));
    const refLogits = tf.tidy(() => tf.variable(tf.tensor3d(x.refLogits), false, "wpo-ref-logits"));
    for (const c of dpoOptionsReference.options.cases as OptionsCase[]) {
      const where = `${c.lossType.join("+")} ldAlpha=${c.ldAlpha} useWeighting=${c.useWeighting}`;
      const task = new PreferenceTask({
        model: logitsModel(logits),
        loss: dpoObjective(new LossRegistry(), {
          lossType: c.lossType,
          lossWeights: c.lossWeights,
          rpoAlpha: null,
          beta: x.beta,
        }),
        reference: { kind: "model", run: (fn) => fn(logitsModel(refLogits)) },
        beta: x.beta,
        ldAlpha: c.ldAlpha,
        useWeighting: c.useWeighting,
      });
      const input = batch();
      task.beforeStep([input]);
      expectClose(input.refChosenLogps!, c.refChosenLogps, `${where} ref chosen logps`);
      expectClose(input.refRejectedLogps!, c.refRejectedLogps, `${where} ref rejected logps`);
      let metrics: Record<string, number> = {};
      let rewards: number[][] = [];
      const { value, grads } = tf.variableGrads(() => {
        const out = task.compute(input, { training: true });
        metrics = Object.fromEntries(
          Object.entries(out.metrics ?? {}).map(([k, v]) => [k, typeof v === "number" ? v : v.dataSync()[0]!]),
        );
        rewards = [Array.from(out.rewards!.chosen.dataSync()), Array.from(out.rewards!.rejected.dataSync())];
        return out.loss;
      }, [logits]);
      expectClose(value, c.loss, `${where} loss`);
      expectClose(grads["wpo-logits"]!, c.grad, `${where} dloss/dlogits`);
      const mean = (v: number[]) => v.reduce((s, y) => s + y, 0) / v.length;
      expectClose(metrics["logps/chosen"]!, mean(c.chosenLogps), `${where} logps/chosen`);
      expectClose(metrics["logps/rejected"]!, mean(c.rejectedLogps), `${where} logps/rejected`);
      expectClose(rewards[0]!, c.chosenRewards, `${where} rewards chosen`);
      expectClose(rewards[1]!, c.rejectedRewards, `${where} rewards rejected`);
      tf.dispose([value, ...Object.values(grads)]);
      if (c.useWeighting) {
        tf.tidy(() => {
          const lp = sequenceLogProbs(logits as unknown as tf.Tensor3D, input.inputIds, mask);
          expectClose(
            wpoPairWeights(logits as unknown as tf.Tensor3D, lp.perToken, mask),
            c.pairWeights!,
            `${where} w_c·w_r`,
          );
        });
      }
    }
    tf.dispose([logits, refLogits]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("policyWeights multiply every type's per-pair loss in dpoLoss, and are refused with aot (TRL's message)", () => {
    tf.tidy(() => {
      const w = [0.5, 2, 0.25, 1, 0.75, 1.5];
      const [pc, pr, rc, rr] = logpArgs;
      const plain = dpoLoss(pc, pr, rc, rr, { lossType: ["sigmoid", "sft"] }, extras);
      const weighted = dpoLoss(pc, pr, rc, rr, { lossType: ["sigmoid", "sft"] }, { ...extras, policyWeights: w });
      const expected = Array.from(plain.losses.dataSync()).map((l, i) => l * w[i]!);
      expectClose(weighted.losses, expected, "weighted per-pair losses");
      expectClose(weighted.chosenRewards, Array.from(plain.chosenRewards.dataSync()), "rewards unweighted");
    });
    for (const lossType of ["aot", "aot_unpaired"] as const) {
      expect(() => dpoLoss([-1], [-2], [-1], [-2], { lossType }, { policyWeights: [1] })).toThrow(
        /WPO-style weighting is not implemented for 'aot' or 'aot_unpaired'/,
      );
      expect(configErrorField(() => resolveDPOConfig({ useWeighting: true, lossType }))).toBe("useWeighting");
    }
  });
});

describe("TR-DPO (syncRefModel): mixReferenceWeights vs TRL's SyncRefModelCallback._sync_target_model (torch float64)", () => {
  it("two syncs give α·p₂ + (1−α)·(α·p₁ + (1−α)·ref₀), in place, a tied weight mixed once", () => {
    const s = dpoOptionsReference.sync;
    const weight = (values: number[][], trainable: boolean) =>
      tf.tidy(() => tf.variable(tf.tensor2d(values), trainable));
    const model = (vars: Map<string, tf.Variable>): CausalLM => ({
      config: {} as CausalLM["config"],
      forward: () => {
        throw new Error("unused");
      },
      namedParameters: () => vars,
      trainableVariables: () => [...vars.values()],
      savePretrained: async () => {},
      dispose: () => {},
    });
    const refWeight = weight(s.ref0, false);
    // the reference lists its one variable under two names, as a tied embedding / LM head
    const reference = model(
      new Map([
        ["embed", refWeight],
        ["lm_head", refWeight],
      ]),
    );
    for (let k = 0; k < 2; k++) {
      const p = weight(s.policies[k], true);
      mixReferenceWeights(
        model(
          new Map([
            ["embed", p],
            ["lm_head", p],
          ]),
        ),
        reference,
        s.alpha,
      );
      expectClose(refWeight, s.after[k], `ref after sync ${k + 1}`);
      p.dispose();
    }
    const other = weight(s.ref0, true);
    expect(configErrorField(() => mixReferenceWeights(model(new Map([["other", other]])), reference, 0.5))).toBe(
      "syncRefModel",
    );
    tf.dispose([refWeight, other]);
  });
});
