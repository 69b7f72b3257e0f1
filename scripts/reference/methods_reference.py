#!/usr/bin/env python3
"""Reference values for the KTO, ORPO, CPO/SimPO, GRPO and RLOO pieces of @prefkit/losses, in float64 torch.

Written from the formulas of TRL v0.29.1 (`KTOTrainer.kto_loss`, `ORPOTrainer.odds_ratio_loss`,
`CPOTrainer.cpo_loss`, `GRPOTrainer._generate_and_score_completions` / `_compute_loss`, and RLOO's), with
TRL's detaches, clamps and aggregations. Inputs are multiples of 1/64 so they are exact in float32; ratios
and margins are kept away from clip boundaries and kinks so float32 lands on the same side.

Run with Debian's python (torch 1.13):
    /usr/bin/python3 scripts/reference/methods_reference.py
Writes packages/losses/test/fixtures/methods_reference.json.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731


def clean(x):
    """Tensors and floats to JSON: NaN becomes null (JSON has no NaN)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().tolist()
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, list):
        return [clean(v) for v in x]
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    return x


def grad_or_zeros(g, like):
    return torch.zeros_like(like) if g is None else g


# ---------------------------------------------------------------- KTO

KTO_INPUTS = {
    "policyLogps": [-12.5, -20.25, -7.75, -31.0, -15.5, -9.125],
    "refLogps": [-13.25, -19.5, -8.0, -30.5, -16.875, -9.0],
    "labels": [True, False, True, True, False, False],
    # Mismatched pairs: mean(policy − ref) = +0.3125 (clamp inactive) and −0.5 (clamp active).
    "policyKlLogps": [-14.0, -18.5, -9.25, -29.75, -22.0, -8.5],
    "refKlLogps": [-14.5, -18.75, -9.5, -30.0, -22.25, -8.875],
    "policyKlLogpsNegative": [-14.0, -18.5, -9.25, -29.75, -22.0, -8.5],
    "refKlLogpsNegative": [-13.5, -18.0, -8.75, -29.25, -21.5, -8.0],
}


def kto_loss(pol, ref, labels, beta, loss_type, dw, uw, kl_pol=None, kl_ref=None, kl_value=None):
    """TRL `kto_loss`: desirable rows first, KL and rewards detached, KL clamped at 0 after the mean."""
    if loss_type == "kto":
        if kl_value is not None:
            kl = T(kl_value)
        else:
            kl = (kl_pol - kl_ref).mean().detach().clamp(min=0)
    else:
        kl = torch.zeros(())
    lab = torch.tensor(labels, dtype=torch.bool)
    chosen = (pol - ref)[lab]
    rejected = (pol - ref)[~lab]
    if loss_type == "kto":
        cl = 1 - torch.sigmoid(beta * (chosen - kl))
        rl = 1 - torch.sigmoid(beta * (kl - rejected))
    else:
        cl = 1 - torch.sigmoid(beta * chosen)
        rl = torch.sigmoid(beta * rejected)
    losses = torch.cat((dw * cl, uw * rl), 0)
    return losses, beta * chosen.detach(), beta * rejected.detach(), kl


def kto_section():
    x = KTO_INPUTS
    cases = []
    variants = [
        dict(lossType="kto", beta=0.1, desirableWeight=1.0, undesirableWeight=1.0, klFrom="logps"),
        dict(lossType="kto", beta=0.1, desirableWeight=1.0, undesirableWeight=1.0, klFrom="logpsNegative"),
        dict(lossType="kto", beta=0.5, desirableWeight=1.5, undesirableWeight=0.75, klFrom="logps"),
        dict(lossType="kto", beta=0.1, desirableWeight=1.0, undesirableWeight=1.25, klFrom="value", kl=0.375),
        dict(lossType="apo_zero_unpaired", beta=0.1, desirableWeight=1.0, undesirableWeight=1.0),
        dict(lossType="apo_zero_unpaired", beta=0.25, desirableWeight=1.25, undesirableWeight=0.5),
        dict(lossType="kto", beta=0.1, desirableWeight=1.5, undesirableWeight=1.0, klFrom="logps",
             labels=[True] * 6),
        dict(lossType="kto", beta=0.1, desirableWeight=1.0, undesirableWeight=0.75, klFrom="logps",
             labels=[False] * 6),
        dict(lossType="apo_zero_unpaired", beta=0.1, desirableWeight=1.0, undesirableWeight=1.0,
             labels=[False] * 6),
    ]
    grads = []
    for v in variants:
        labels = v.get("labels", x["labels"])
        pol = T(x["policyLogps"]).requires_grad_(True)
        ref = T(x["refLogps"]).requires_grad_(True)
        suffix = "Negative" if v.get("klFrom") == "logpsNegative" else ""
        kl_pol = T(x["policyKlLogps" + suffix]).requires_grad_(True)
        kl_ref = T(x["refKlLogps" + suffix]).requires_grad_(True)
        losses, cr, rr, kl = kto_loss(pol, ref, labels, v["beta"], v["lossType"], v["desirableWeight"],
                                      v["undesirableWeight"], kl_pol, kl_ref, v.get("kl"))
        loss = losses.mean()
        g = torch.autograd.grad(loss, [pol, ref, kl_pol, kl_ref], allow_unused=True)
        case = {**v, "labels": labels, "losses": losses, "loss": loss, "chosenRewards": cr,
                "rejectedRewards": rr, "kl": kl}
        cases.append(case)
        grads.append({"policyLogps": grad_or_zeros(g[0], pol), "refLogps": grad_or_zeros(g[1], ref),
                      "policyKlLogps": grad_or_zeros(g[2], kl_pol), "refKlLogps": grad_or_zeros(g[3], kl_ref)})
    for c, g in zip(cases, grads):
        c["grads"] = g
    return {"inputs": x, "cases": cases}


# ---------------------------------------------------------------- ORPO

# Per-token mean log-probs on both sides of −ln 2 (the log1mexp switch).
ORPO_INPUTS = {
    "chosenLogps": [-0.25, -1.5, -0.5, -2.75, -0.0625, -1.0],
    "rejectedLogps": [-0.75, -1.25, -3.5, -0.375, -0.125, -1.0],
    "chosenNll": 1.296875,
}


def log1mexp(x):
    t = -0.6931471805599453
    return torch.where(x < t, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def odds_ratio_loss(pc, pr, beta):
    log_odds = (pc - pr) - (log1mexp(pc) - log1mexp(pr))
    ratio = F.logsigmoid(log_odds)
    return beta * ratio, beta * pc.detach(), beta * pr.detach(), ratio.mean(), log_odds.mean()


def orpo_section():
    x = ORPO_INPUTS
    cases = []
    for beta in (0.1, 0.25):
        pc = T(x["chosenLogps"]).requires_grad_(True)
        pr = T(x["rejectedLogps"]).requires_grad_(True)
        nll = T(x["chosenNll"]).requires_grad_(True)
        losses, cr, rr, lor, loc = odds_ratio_loss(pc, pr, beta)
        loss = nll - losses.mean()
        g = torch.autograd.grad(loss, [pc, pr, nll])
        cases.append({"beta": beta, "losses": losses, "chosenRewards": cr, "rejectedRewards": rr,
                      "logOddsRatio": lor, "logOddsChosen": loc, "loss": loss,
                      "log1mexpChosen": log1mexp(pc), "grads": {"chosenLogps": g[0], "rejectedLogps": g[1],
                                                                  "chosenNll": g[2]}})
    return {"inputs": x, "cases": cases}


# ---------------------------------------------------------------- CPO

CPO_INPUTS = {
    # Sums (sigmoid, hinge) and per-token means (ipo, simpo). β·logits spans both sides of the hinge kink.
    "chosenLogps": [-12.5, -20.25, -7.75, -31.0, -15.5, -9.125],
    "rejectedLogps": [-14.0, -18.5, -19.25, -29.75, -22.0, -8.5],
    "chosenMeans": [-1.25, -0.5, -0.75, -2.0, -0.375, -1.125],
    "rejectedMeans": [-1.5, -0.375, -1.75, -1.875, -1.25, -1.0],
    "chosenNll": 1.296875,
}


def cpo_loss(pc, pr, beta, loss_type, eps, gamma, alpha):
    if alpha != 0.0:
        c = (1 - torch.exp(pc).pow(-alpha)) / alpha
        r = (1 - torch.exp(pr).pow(-alpha)) / alpha
    else:
        c, r = pc, pr
    logits = c - r
    if loss_type == "simpo":
        logits = logits - gamma / beta
        losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    elif loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(loss_type)
    return losses, beta * c.detach(), beta * r.detach()


def cpo_section():
    x = CPO_INPUTS
    cases = []
    variants = []
    for lt in ("sigmoid", "hinge", "ipo", "simpo"):
        for eps in (0.0, 0.1):
            variants.append(dict(lossType=lt, beta=0.1, labelSmoothing=eps, simpoGamma=0.5, alpha=0.0, cpoAlpha=1.0))
    variants += [
        dict(lossType="simpo", beta=2.0, labelSmoothing=0.0, simpoGamma=1.0, alpha=0.0, cpoAlpha=0.0),
        dict(lossType="simpo", beta=2.5, labelSmoothing=0.1, simpoGamma=0.25, alpha=0.0, cpoAlpha=0.0),
        dict(lossType="hinge", beta=0.5, labelSmoothing=0.0, simpoGamma=0.5, alpha=0.0, cpoAlpha=1.0),
        dict(lossType="ipo", beta=0.5, labelSmoothing=0.0, simpoGamma=0.5, alpha=0.0, cpoAlpha=0.5),
        # AlphaPO (TRL's "alphapo" = simpo with cpo_alpha 0), and α on the other types.
        dict(lossType="simpo", beta=2.0, labelSmoothing=0.0, simpoGamma=0.5, alpha=0.25, cpoAlpha=0.0),
        dict(lossType="sigmoid", beta=0.1, labelSmoothing=0.1, simpoGamma=0.5, alpha=0.0625, cpoAlpha=1.0),
        dict(lossType="ipo", beta=0.1, labelSmoothing=0.0, simpoGamma=0.5, alpha=-0.5, cpoAlpha=1.0),
        dict(lossType="hinge", beta=0.1, labelSmoothing=0.0, simpoGamma=0.5, alpha=0.0625, cpoAlpha=1.0),
    ]
    for v in variants:
        means = v["lossType"] in ("ipo", "simpo")
        pc = T(x["chosenMeans" if means else "chosenLogps"]).requires_grad_(True)
        pr = T(x["rejectedMeans" if means else "rejectedLogps"]).requires_grad_(True)
        nll = T(x["chosenNll"]).requires_grad_(True)
        losses, cr, rr = cpo_loss(pc, pr, v["beta"], v["lossType"], v["labelSmoothing"], v["simpoGamma"], v["alpha"])
        # TRL skips the NLL (takes 0) when cpo_alpha is 0.
        nll_term = nll if v["cpoAlpha"] != 0 else torch.zeros(())
        loss = losses.mean() + v["cpoAlpha"] * nll_term
        g = torch.autograd.grad(loss, [pc, pr, nll], allow_unused=True)
        cases.append({**v, "means": means, "losses": losses, "chosenRewards": cr, "rejectedRewards": rr,
                      "loss": loss, "nllLoss": nll_term,
                      "grads": {"chosenLogps": grad_or_zeros(g[0], pc), "rejectedLogps": grad_or_zeros(g[1], pr),
                                "chosenNll": grad_or_zeros(g[2], nll)}})
    return {"inputs": x, "cases": cases}


# ---------------------------------------------------------------- GRPO advantages

def nanstd(t, dim=None, keepdim=False):
    """TRL's `nanstd`."""
    if dim is None:
        mean = torch.nanmean(t)
        variance = torch.nanmean((t - mean) ** 2)
        count = torch.sum(~torch.isnan(t))
    else:
        mean = torch.nanmean(t, dim=dim, keepdim=True)
        variance = torch.nanmean((t - mean) ** 2, dim=dim, keepdim=True)
        count = torch.sum(~torch.isnan(t), dim=dim, keepdim=True)
    correction = count / (count - 1)
    correction = torch.where(count > 1, correction, torch.full_like(correction, float("nan")))
    variance = variance * correction
    if dim is not None and not keepdim:
        variance = variance.squeeze(dim)
    return torch.sqrt(variance)


def grpo_advantages(rewards_per_func, weights, g, scale_rewards, aggregation):
    """TRL `_generate_and_score_completions`, both multi-objective aggregations."""
    scale_rewards = {True: "group", False: "none"}.get(scale_rewards, scale_rewards)
    w = T(weights)
    if aggregation == "sum_then_normalize":
        rewards = (rewards_per_func * w.unsqueeze(0)).nansum(dim=1)
        mean_grouped = rewards.view(-1, g).mean(dim=1).repeat_interleave(g, dim=0)
        if scale_rewards in ("group", "none"):
            std = rewards.view(-1, g).std(dim=1).repeat_interleave(g, dim=0) if g > 1 else torch.zeros_like(rewards)
        else:
            std = rewards.std().expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        adv = rewards - mean_grouped
        if scale_rewards != "none":
            adv = adv / (std + 1e-4)
    else:
        grouped = rewards_per_func.view(-1, g, rewards_per_func.shape[1])
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True) if g > 1 else torch.zeros_like(mean_k)
        reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, rewards_per_func.shape[1])
        rewards = (reward_k * w.unsqueeze(0)).nansum(dim=1)
        std = rewards.std().expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        adv = (rewards - rewards.mean()) / (std + 1e-4)
    is_std_zero = torch.isclose(std, torch.zeros_like(std))
    return adv, rewards, std, is_std_zero.double().mean()


def reward_metrics(rewards_per_func, names):
    out = {}
    for i, name in enumerate(names):
        out[f"rewards/{name}/mean"] = torch.nanmean(rewards_per_func[:, i])
        out[f"rewards/{name}/std"] = nanstd(rewards_per_func[:, i])
    total = rewards_per_func.nansum(dim=1)
    out["reward"] = total.mean()
    out["reward_std"] = total.std()
    return out


def grpo_advantage_section():
    # Two reward functions over 3 prompts × 3 generations; one None; prompt 2's weighted rewards are all 1.5.
    rewards = [[1.0, 0.5], [0.0, 1.0], [0.5, None],
               [1.0, 1.0], [1.0, 1.0], [1.0, 1.0],
               [0.25, 0.0], [0.75, 1.5], [-0.5, 0.25]]
    weights = [1.0, 0.5]
    rpf = T([[float("nan") if v is None else v for v in row] for row in rewards])
    cases = []
    for scale in ("group", "batch", "none", True, False):
        adv, r, std, frac = grpo_advantages(rpf, weights, 3, scale, "sum_then_normalize")
        cases.append({"scaleRewards": scale, "multiObjectiveAggregation": "sum_then_normalize", "numGenerations": 3,
                      "advantages": adv, "rewards": r, "std": std, "fracRewardZeroStd": frac})
    adv, r, std, frac = grpo_advantages(rpf, weights, 3, "group", "normalize_then_sum")
    cases.append({"scaleRewards": "group", "multiObjectiveAggregation": "normalize_then_sum", "numGenerations": 3,
                  "advantages": adv, "rewards": r, "std": std, "fracRewardZeroStd": frac})
    # One function, groups of 2 (prompt 3 has zero variance); and G = 1 (std taken as 0).
    single = [0.5, 1.5, -1.0, 2.0, 0.75, 0.75]
    single_cases = []
    for g, scale in ((2, "group"), (2, "batch"), (2, "none"), (1, "group")):
        adv, r, std, frac = grpo_advantages(T(single).unsqueeze(1), [1.0], g, scale, "sum_then_normalize")
        single_cases.append({"scaleRewards": scale, "numGenerations": g, "advantages": adv, "rewards": r,
                             "std": std, "fracRewardZeroStd": frac})
    return {"rewards": rewards, "rewardWeights": weights, "cases": cases,
            "weightedSum": (torch.nan_to_num(rpf, nan=0.0) * T(weights)).sum(dim=1),
            "metrics": reward_metrics(rpf, ["accuracy", "format"]),
            "single": {"rewards": single, "cases": single_cases}}


# ---------------------------------------------------------------- GRPO loss

# 6 completions (2 prompts × 3), 5 tokens. Row 3 is fully masked (a truncated completion under
# mask_truncated_completions); rows 1 and 4 are right-padded. logps − old spans ±0.4 so that ratios
# fall below 0.8, inside, in (1.2, 1.28) and above 1.28, with advantages of both signs.
GRPO_INPUTS = {
    "logps": [[-1.0, -0.5, -2.0, -0.375, -1.25],
              [-0.5, -1.75, -0.25, -2.0, -3.0],
              [-0.75, -0.125, -1.5, -0.625, -0.25],
              [-2.25, -1.0, -0.5, -0.875, -1.125],
              [-0.25, -0.375, -1.0, -1.5, -0.5],
              [-1.5, -0.625, -0.75, -0.25, -2.0]],
    "oldLogps": [[-1.125, -0.25, -2.375, -0.75, -1.0],
                 [-0.75, -1.5, -0.3125, -2.5, -1.0],
                 [-0.5, -0.5, -1.0625, -0.625, -0.5],
                 [-2.0, -1.25, -0.5, -1.0, -1.0],
                 [-0.5, -0.125, -1.375, -1.25, -0.5],
                 [-1.25, -1.0, -0.6875, -0.46875, -2.5]],
    "refLogps": [[-1.25, -0.75, -1.75, -0.5, -1.5],
                 [-0.625, -1.5, -0.5, -1.75, -2.5],
                 [-1.0, -0.25, -1.25, -0.75, -0.5],
                 [-2.0, -1.25, -0.75, -1.0, -1.0],
                 [-0.5, -0.25, -1.25, -1.25, -0.75],
                 [-1.25, -0.875, -1.0, -0.5, -1.75]],
    "mask": [[1, 1, 1, 1, 1],
             [1, 1, 1, 0, 0],
             [1, 1, 1, 1, 1],
             [0, 0, 0, 0, 0],
             [1, 1, 0, 0, 0],
             [1, 1, 1, 1, 1]],
    "advantages": [1.0, -0.5, -0.5, 0.75, -1.25, 0.5],
    "maxCompletionLength": 8,
}


def grpo_loss(logps, old, ref, adv, mask, beta, eps, eps_high, loss_type, max_len, num_items=None, accum=1,
              delta=None):
    """TRL `_compute_loss` (token-level importance sampling)."""
    old = logps.detach() if old is None else old
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
    coef_1 = torch.exp(logps - old)
    per_token_kl = None
    if ref is not None:
        per_token_kl = torch.exp(ref - logps) - (ref - logps) - 1
    coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps_high)
    if delta is not None:
        coef_1 = torch.clamp(coef_1, max=delta)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accum
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0) / accum
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_len) / accum
    elif loss_type == "dapo":
        normalizer = mask.sum() if num_items is None else num_items
        loss = (per_token_loss * mask).sum() / normalizer
    else:
        raise ValueError(loss_type)
    count = mask.sum().clamp(min=1.0)
    mbm = lambda x: (x * mask).sum() / count  # noqa: E731
    low = ((coef_1 < 1 - eps) & (adv < 0)).double()
    high = ((coef_1 > 1 + eps_high) & (adv > 0)).double()
    return {"loss": loss, "perTokenLoss": per_token_loss, "kl": None if per_token_kl is None else mbm(per_token_kl),
            "clipRatio": {"lowMean": mbm(low), "highMean": mbm(high), "regionMean": mbm(((low + high) > 0).double())}}


def grpo_loss_section():
    x = GRPO_INPUTS
    variants = []
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
        for beta in (0.0, 0.04):
            for eps_high in (0.2, 0.28):
                variants.append(dict(lossType=lt, beta=beta, epsilon=0.2, epsilonHigh=eps_high))
    variants += [
        dict(lossType="grpo", beta=0.0, epsilon=0.2, epsilonHigh=0.2, oldIsNone=True),
        dict(lossType="dapo", beta=0.04, epsilon=0.2, epsilonHigh=0.28, oldIsNone=True),
        dict(lossType="dapo", beta=0.04, epsilon=0.2, epsilonHigh=0.28, numItemsInBatch=40),
        dict(lossType="bnpo", beta=0.04, epsilon=0.2, epsilonHigh=0.2, gradientAccumulationSteps=2),
        # With delta below 1 + ε_high the capped ratio can never count as high-clipped (TRL reassigns coef_1).
        dict(lossType="grpo", beta=0.0, epsilon=0.1, epsilonHigh=0.3, delta=1.25),
        dict(lossType="bnpo", beta=0.04, epsilon=0.1, epsilonHigh=0.3, delta=1.40625),
        dict(lossType="dapo", beta=0.0, epsilon=0.2, epsilonHigh=0.2, refIsNone=True),
    ]
    cases = []
    for v in variants:
        logps = T(x["logps"]).requires_grad_(True)
        old = None if v.get("oldIsNone") else T(x["oldLogps"])
        ref = None if v.get("refIsNone") else T(x["refLogps"])
        out = grpo_loss(logps, old, ref, T(x["advantages"]), T(x["mask"]), v["beta"], v["epsilon"], v["epsilonHigh"],
                        v["lossType"], x["maxCompletionLength"], v.get("numItemsInBatch"),
                        v.get("gradientAccumulationSteps", 1), v.get("delta"))
        (g,) = torch.autograd.grad(out["loss"], [logps])
        cases.append({**v, **out, "grad": g})
    # Sanity: at ratio 1 with β = 0, "grpo"'s gradient is −A/(|y|·B) on valid tokens.
    g0 = next(c for c in cases if c.get("oldIsNone") and c["lossType"] == "grpo")["grad"]
    m = T(x["mask"])
    expected = -T(x["advantages"]).unsqueeze(1) * m / (m.sum(-1, keepdim=True).clamp(min=1.0) * m.shape[0])
    assert torch.allclose(g0, expected), (g0, expected)
    return {"inputs": x, "cases": cases}


# ---------------------------------------------------------------- RLOO

RLOO_INPUTS = {
    "rewards": [1.0, 0.25, -0.5, 2.0, 0.75, 1.5],
    "oldLogps": GRPO_INPUTS["oldLogps"],
    "refLogps": GRPO_INPUTS["refLogps"],
    "mask": [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0],
             [1, 1, 1, 1, 1]],
    # For the loss: sequence log-ratios of +0.375, +0.21875 (ratio in (1.2, 1.28)), −0.25, ±0.125.
    "logps": GRPO_INPUTS["logps"],
    "oldSequenceLogps": [-5.5, -2.71875, -3.0, -4.75, -0.5, -5.0],
    "zeroVarianceRewards": [0.5, 0.5, 0.5, 1.0, -1.0, 0.25],
}


def rloo_shape(rewards, old, ref, mask, beta, clip_range=None):
    """TRL RLOO: clamp, then subtract β·Σ(old − ref) (k1 over the sequence)."""
    if clip_range is not None:
        rewards = rewards.clamp(min=clip_range[0], max=clip_range[1])
    per_token_kl = old - ref
    kl = (per_token_kl * mask).sum(-1)
    if beta != 0.0:
        rewards = rewards - beta * kl
    mean_kl = (per_token_kl * mask).sum() / mask.sum().clamp(min=1.0)
    return rewards, kl, mean_kl


def rloo_advantages(rewards, k, normalize):
    grouped = rewards.view(-1, k)
    std = grouped.std(dim=1) if k > 1 else torch.zeros(grouped.shape[0])
    if k > 1:
        baselines = ((grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)).view(-1)
        adv = rewards - baselines
    else:
        baselines = rewards
        adv = torch.zeros_like(rewards)
    if normalize:
        adv = (adv - adv.mean()) / (adv.std() + 1e-4)
    return adv, baselines, torch.isclose(std, torch.zeros_like(std)).double().mean()


def rloo_loss(logps, old_seq, adv, mask, eps, eps_high):
    seq = (logps * mask).sum(1)
    old_seq = seq.detach() if old_seq is None else old_seq
    coef_1 = torch.exp(seq - old_seq)
    coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps_high)
    per_seq = -torch.min(coef_1 * adv, coef_2 * adv)
    low = ((coef_1 < 1 - eps) & (adv < 0)).double()
    high = ((coef_1 > 1 + eps_high) & (adv > 0)).double()
    return {"loss": per_seq.mean(), "perSequenceLoss": per_seq,
            "clipRatio": {"lowMean": low.mean(), "highMean": high.mean(), "regionMean": ((low + high) > 0).double().mean()}}


def rloo_section():
    x = RLOO_INPUTS
    r, old, ref, m = T(x["rewards"]), T(x["oldLogps"]), T(x["refLogps"]), T(x["mask"])
    shaping = []
    for beta, clip in ((0.0, None), (0.05, None), (0.05, [-0.25, 1.75])):
        shaped, seq_kl, mean_kl = rloo_shape(r, old, ref, m, beta, clip)
        shaping.append({"beta": beta, "rewardClipRange": clip, "rewards": shaped, "sequenceKl": seq_kl,
                        "kl": mean_kl})
    advantages = []
    for rewards, k, normalize in ((shaping[1]["rewards"], 3, False), (shaping[1]["rewards"], 3, True),
                                  (r, 2, False), (T(x["zeroVarianceRewards"]), 3, False),
                                  (T(x["zeroVarianceRewards"]), 3, True), (r, 1, False)):
        adv, base, frac = rloo_advantages(rewards, k, normalize)
        advantages.append({"rewards": rewards, "numGenerations": k, "normalize": normalize, "advantages": adv,
                           "baselines": base, "fracRewardZeroStd": frac})
    losses = []
    adv = advantages[0]["advantages"]
    for eps, eps_high, old_none in ((0.2, 0.2, False), (0.2, 0.28, False), (0.1, 0.3, False), (0.2, 0.2, True)):
        logps = T(x["logps"]).requires_grad_(True)
        out = rloo_loss(logps, None if old_none else T(x["oldSequenceLogps"]), adv, m, eps, eps_high)
        (g,) = torch.autograd.grad(out["loss"], [logps])
        losses.append({"epsilon": eps, "epsilonHigh": eps_high, "oldIsNone": old_none, "advantages": adv, **out,
                       "grad": g})
    return {"inputs": x, "shaping": shaping, "advantages": advantages, "losses": losses}


def main():
    out = {"generatedBy": "scripts/reference/methods_reference.py", "torch": torch.__version__,
           "kto": kto_section(), "orpo": orpo_section(), "cpo": cpo_section(),
           "grpoAdvantages": grpo_advantage_section(), "grpoLoss": grpo_loss_section(), "rloo": rloo_section()}
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "packages", "losses", "test", "fixtures", "methods_reference.json")
    with open(path, "w") as f:
        json.dump(clean(out), f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
