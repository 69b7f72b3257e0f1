import { ConfigError, LossRegistry, rewardMetrics, tf } from "@prefkit/core";
import {
  createDPOLoss,
  DPO_LOSS_TYPES,
  DPO_LOSSES,
  type DPOLossOptions,
  type DPOLossType,
  defaultDPOConfig,
  dpoInputsFor,
  dpoLoss,
  type FDivergenceType,
  perTokenMeanLogps,
  registerBuiltinLosses,
  validateDPOConfig,
} from "@prefkit/losses";
import { describe, expect, it } from "vitest";
import { cpuAgainstTorch, expectClose, reference } from "./helpers.js";

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
