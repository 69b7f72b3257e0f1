#!/usr/bin/env python3
"""Reference values for @prefkit/losses, computed in float64 with torch.

Mirrors TRL's formulas (DPO loss family, reward loss, PPOv2 pieces). Inputs are multiples of 1/64 so
they are exact in float32, and magnitudes are chosen so that float32 error stays < 1e-6 relative.

Run with Debian's python (torch 1.13):
    /usr/bin/python3 scripts/reference/losses_reference.py
Writes packages/losses/test/fixtures/losses_reference.json.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731

LOSS_TYPES = [
    "sigmoid", "hinge", "ipo", "robust", "exo_pair", "nca_pair", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "sft",
]
F_DIVS = ["reverse_kl", "forward_kl", "js_divergence", "alpha_divergence"]

# Six pairs; u_c - u_r ranges over negative and positive margins, no ties in any sorted quantity.
DPO_INPUTS = {
    "chosenLogps": [-12.5, -20.25, -7.75, -31.0, -15.5, -9.125],
    "rejectedLogps": [-14.0, -18.5, -9.25, -29.75, -22.0, -8.5],
    "refChosenLogps": [-13.25, -19.5, -8.0, -30.5, -16.875, -9.0],
    "refRejectedLogps": [-13.5, -19.0, -8.75, -31.5, -20.25, -8.0],
    "chosenLengths": [10, 16, 5, 25, 12, 7],
    "rejectedLengths": [12, 14, 8, 21, 18, 6],
    "chosenNll": 1.296875,
}


def f_score(u, f_type, alpha):
    if f_type == "reverse_kl":
        return u
    if f_type == "forward_kl":
        return -torch.exp(-u)
    if f_type == "js_divergence":
        return F.logsigmoid(u)
    if abs(alpha - 1.0) < 1e-6:
        return u
    return torch.exp(torch.clamp((alpha - 1.0) * u, max=80.0)) / (alpha - 1.0)


def dpo_loss(pc, pr, rc, rr, loss_types, weights=None, beta=0.1, eps=0.0, f_type="reverse_kl", alpha=0.5,
             tau=0.05, reference_free=False, lc=None, lr=None, nll=None):
    """TRL's DPO loss family; returns (weighted per-pair losses, chosen rewards, rejected rewards)."""
    chosen_rewards = beta * (pc - rc)
    rejected_rewards = beta * (pr - rr)
    if reference_free:
        rc, rr = torch.zeros_like(rc), torch.zeros_like(rr)
    uc, ur = pc - rc, pr - rr
    sc, sr = f_score(uc, f_type, alpha), f_score(ur, f_type, alpha)
    delta = sc - sr
    bd = beta * delta
    weights = weights or [1.0] * len(loss_types)
    total = torch.zeros_like(pc)
    for lt, w in zip(loss_types, weights):
        if lt == "sigmoid":
            loss = -(1 - eps) * F.logsigmoid(bd) - eps * F.logsigmoid(-bd)
        elif lt == "hinge":
            loss = torch.relu(1 - bd)
        elif lt == "ipo":
            d = (sc / lc.clamp(min=1) - sr / lr.clamp(min=1)) if lc is not None else delta
            loss = (d - 1 / (2 * beta)) ** 2
        elif lt == "robust":
            loss = (-(1 - eps) * F.logsigmoid(bd) + eps * F.logsigmoid(-bd)) / (1 - 2 * eps)
        elif lt == "exo_pair":
            e = T(eps)
            loss = torch.sigmoid(bd) * (F.logsigmoid(bd) - torch.log1p(-e)) + torch.sigmoid(-bd) * (
                F.logsigmoid(-bd) - torch.log(e))
        elif lt == "nca_pair":
            loss = -F.logsigmoid(beta * sc) - 0.5 * F.logsigmoid(-beta * sc) - 0.5 * F.logsigmoid(-beta * sr)
        elif lt == "bco_pair":
            loss = -F.logsigmoid(beta * sc) - F.logsigmoid(-beta * sr)
        elif lt == "sppo_hard":
            loss = (sc - 0.5 / beta) ** 2 + (sr + 0.5 / beta) ** 2
        elif lt == "aot":
            d = torch.sort(pc - pr, dim=0)[0] - torch.sort(rc - rr, dim=0)[0]
            loss = -F.logsigmoid(beta * d) * (1 - eps) - F.logsigmoid(-beta * d) * eps
        elif lt == "aot_unpaired":
            d = torch.sort(uc, dim=0)[0] - torch.sort(ur, dim=0)[0]
            loss = -F.logsigmoid(beta * d) * (1 - eps) - F.logsigmoid(-beta * d) * eps
        elif lt == "apo_zero":
            loss = (1 - torch.sigmoid(beta * uc)) + torch.sigmoid(beta * ur)
        elif lt == "apo_down":
            loss = torch.sigmoid(beta * uc) + (1 - torch.sigmoid(bd))
        elif lt == "discopop":
            m = torch.sigmoid(bd / tau)
            loss = -F.logsigmoid(bd) * (1 - m) + torch.exp(-bd) * m
        elif lt == "sigmoid_norm":
            loss = -F.logsigmoid(beta * (sc / lc.clamp(min=1) - sr / lr.clamp(min=1)))
        elif lt == "sft":
            loss = nll * torch.ones_like(pc)
        else:
            raise ValueError(lt)
        total = total + w * loss
    return total, chosen_rewards, rejected_rewards


def tolist(x):
    return x.detach().tolist()


def dpo_section():
    x = {k: T(v) for k, v in DPO_INPUTS.items()}
    args = (x["chosenLogps"], x["rejectedLogps"], x["refChosenLogps"], x["refRejectedLogps"])
    extra = dict(lc=x["chosenLengths"], lr=x["rejectedLengths"], nll=x["chosenNll"])
    cases = []
    for f_type in F_DIVS:
        for lt in LOSS_TYPES:
            for eps in ([1e-3, 0.1] if lt == "exo_pair" else [0.0, 0.1]):
                losses, cr, rr = dpo_loss(*args, [lt], eps=eps, f_type=f_type, **extra)
                cases.append({"lossType": [lt], "labelSmoothing": eps, "fDivergenceType": f_type,
                              "withLengths": True, "losses": tolist(losses), "loss": losses.mean().item(),
                              "chosenRewards": tolist(cr), "rejectedRewards": tolist(rr)})
    # IPO fed per-token means and no lengths (the caller-supplied-means form).
    means = [a / (x["chosenLengths"] if i % 2 == 0 else x["rejectedLengths"]) for i, a in enumerate(args)]
    losses, cr, rr = dpo_loss(*means, ["ipo"])
    cases.append({"lossType": ["ipo"], "labelSmoothing": 0.0, "fDivergenceType": "reverse_kl", "withLengths": False,
                  "meansInput": True, "losses": tolist(losses), "loss": losses.mean().item(),
                  "chosenRewards": tolist(cr), "rejectedRewards": tolist(rr)})
    # Other betas, reference-free, alpha = 0.3 and a weighted mix.
    extra_cases = [
        dict(lossType=["sigmoid"], beta=0.5),
        dict(lossType=["ipo"], beta=0.5),
        dict(lossType=["sigmoid"], referenceFree=True),
        dict(lossType=["aot"], referenceFree=True),
        dict(lossType=["sigmoid"], fDivergenceType="alpha_divergence", fAlphaDivergenceCoef=0.3),
        dict(lossType=["discopop"], discopopTau=0.5),
        dict(lossType=["sigmoid", "sft", "ipo", "bco_pair"], lossWeights=[1.0, 0.5, 0.25, 2.0]),
    ]
    for c in extra_cases:
        losses, cr, rr = dpo_loss(
            *args, c["lossType"], weights=c.get("lossWeights"), beta=c.get("beta", 0.1),
            f_type=c.get("fDivergenceType", "reverse_kl"), alpha=c.get("fAlphaDivergenceCoef", 0.5),
            tau=c.get("discopopTau", 0.05), reference_free=c.get("referenceFree", False), **extra)
        cases.append({**c, "labelSmoothing": 0.0, "withLengths": True, "losses": tolist(losses),
                      "loss": losses.mean().item(), "chosenRewards": tolist(cr), "rejectedRewards": tolist(rr)})
    # Autograd gradients of the mean loss with respect to the four log-prob inputs.
    grads = []
    for lt, eps, f_type in [("sigmoid", 0.1, "reverse_kl"), ("ipo", 0.0, "reverse_kl"), ("aot", 0.0, "reverse_kl"),
                            ("aot_unpaired", 0.1, "reverse_kl"), ("discopop", 0.0, "reverse_kl"),
                            ("exo_pair", 1e-3, "reverse_kl"), ("sigmoid", 0.0, "js_divergence"),
                            ("sigmoid_norm", 0.0, "forward_kl")]:
        leaves = [a.clone().requires_grad_(True) for a in args]
        losses, _, _ = dpo_loss(*leaves, [lt], eps=eps, f_type=f_type, **extra)
        g = torch.autograd.grad(losses.mean(), leaves)
        grads.append({"lossType": [lt], "labelSmoothing": eps, "fDivergenceType": f_type,
                      "grads": [tolist(t) for t in g]})
    return {"inputs": DPO_INPUTS, "beta": 0.1, "cases": cases, "grads": grads}


def reward_section():
    rc = [1.5, -0.25, 0.75, 2.0, -1.125]
    rr = [0.5, 0.25, 0.875, -1.0, -1.5]
    margin = [0.5, 0.0, 0.25, 1.0, 0.125]
    cases = []
    for use_margin in (False, True):
        for coef in (None, 0.01):
            c, r = T(rc), T(rr)
            logits = c - r - (T(margin) if use_margin else 0)
            loss = -F.logsigmoid(logits).mean()
            if coef is not None:
                loss = loss + coef * torch.mean((c + r) ** 2)
            all_r = torch.cat([c, r])
            cases.append({"margin": margin if use_margin else None, "centerRewardsCoefficient": coef,
                          "loss": loss.item(),
                          "metrics": {"accuracy": (c > r).double().mean().item(), "margin": (c - r).mean().item(),
                                      "min_reward": all_r.min().item(), "mean_reward": all_r.mean().item(),
                                      "max_reward": all_r.max().item()}})
    return {"chosenRewards": rc, "rejectedRewards": rr, "cases": cases}


def masked_mean(values, mask):
    return (values * mask).sum() / mask.sum()


def masked_var(values, mask):
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    n = mask.sum()
    return variance * (n / (n - 1))


def masked_whiten(values, mask, shift_mean=True):
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened


def ppo_section():
    logprobs = [[-1.25, -0.5, -2.0, -0.125], [-3.0, -0.75, -1.5, -0.25]]
    ref_logprobs = [[-1.5, -0.25, -2.5, -0.125], [-2.0, -1.25, -1.375, -0.875]]
    lp, rlp = T(logprobs), T(ref_logprobs)
    logr = rlp - lp
    kl = {"logprobs": logprobs, "refLogprobs": ref_logprobs, "k1": tolist(-logr),
          "k3": tolist((logr.exp() - 1) - logr)}

    rewards = [[-0.0625, 0.03125, -0.015625, 0.0, 1.25, 0.5], [0.046875, -0.03125, 0.75, 0.375, 0.25, -0.5]]
    values = [[0.5, 0.625, 0.75, 1.0, 0.875, 0.25], [-0.25, 0.125, 0.5, 1.5, -0.75, 2.0]]
    mask = [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]
    m = T(mask)
    r, v = T(rewards) * m, T(values) * m
    gamma, lam = 1.0, 0.95
    lastgaelam = 0
    rev = []
    n = r.shape[1]
    for t in reversed(range(n)):
        nextvalues = v[:, t + 1] if t < n - 1 else 0.0
        delta = r[:, t] + gamma * nextvalues - v[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        rev.append(lastgaelam)
    adv = torch.stack(rev[::-1], axis=1)
    ret = adv + v
    gae = {"rewards": rewards, "values": values, "mask": mask, "gamma": gamma, "lam": lam,
           "advantages": tolist(adv), "returns": tolist(ret)}

    whiten = {"values": tolist(adv), "mask": mask,
              "masked": tolist(masked_whiten(adv, m)),
              "maskedNoShift": tolist(masked_whiten(adv, m, shift_mean=False)),
              "unmasked": tolist(masked_whiten(adv, torch.ones_like(adv))),
              "maskedVar": masked_var(adv, m).item()}

    # Ratios exp(new - old): inside [0.8, 1.2], above and below, with advantages of both signs.
    new_lp = [[-1.0, -0.5, -2.0, -0.375, -1.25], [-0.5, -1.75, -0.25, -2.0, -3.0]]
    old_lp = [[-1.125, -0.25, -2.0625, -0.75, -1.0], [-0.75, -1.5, -0.3125, -2.5, -1.0]]
    adv_p = [[0.5, -1.0, 1.5, -0.25, 2.0], [-0.75, 1.25, -1.5, 0.625, 3.0]]
    pmask = [[1, 1, 1, 1, 0], [1, 1, 1, 1, 0]]
    cliprange = 0.2
    new_t = T(new_lp).requires_grad_(True)
    pm = T(pmask)
    diff = (new_t - T(old_lp)) * pm  # padded positions: TRL fills both with the same constant
    ratio = torch.exp(diff)
    a = T(adv_p)
    pg1 = -a * ratio
    pg2 = -a * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    pg_loss = masked_mean(torch.max(pg1, pg2), pm)
    (pg_grad,) = torch.autograd.grad(pg_loss, new_t)
    policy = {"newLogprobs": new_lp, "oldLogprobs": old_lp, "advantages": adv_p, "mask": pmask,
              "cliprange": cliprange, "loss": pg_loss.item(), "clipfrac": masked_mean((pg2 > pg1).double(), pm).item(),
              "approxkl": (0.5 * (diff ** 2).mean()).item(), "ratioMean": ratio.mean().item(),
              "ratioMin": ratio[pm.bool()].min().item(), "ratioMax": ratio[pm.bool()].max().item(),
              "grad": tolist(pg_grad)}

    new_v = [[0.5, 1.25, -0.5, 2.0, 0.0], [0.75, 0.125, -1.0, 3.0, 1.0]]
    old_v = [[0.625, 0.75, -0.4375, 2.5, 0.5], [0.5, 0.25, -0.5, 2.75, 0.0]]
    returns = [[1.0, 0.5, -0.25, 1.0, 0.0], [0.0, 0.375, -0.25, 2.0, 1.0]]
    vmask = [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    cv = 0.2
    nv = T(new_v).requires_grad_(True)
    vm, ov, rt = T(vmask), T(old_v), T(returns)
    vclip = torch.max(torch.min(nv, ov + cv), ov - cv)
    vf1 = (nv - rt) ** 2
    vf2 = (vclip - rt) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf1, vf2), vm)
    (vf_grad,) = torch.autograd.grad(vf_loss, nv)
    value = {"newValues": new_v, "oldValues": old_v, "returns": returns, "mask": vmask, "cliprangeValue": cv,
             "loss": vf_loss.item(), "clipfrac": masked_mean((vf2 > vf1).double(), vm).item(), "grad": tolist(vf_grad)}

    # Adaptive KL controller (TRL / Ziegler): three updates.
    value_kl, target, horizon = 0.2, 6.0, 10000.0
    trace = []
    for current, n_steps in [(8.0, 256), (3.0, 512), (6.5, 128)]:
        err = min(max(current / target - 1, -0.2), 0.2)
        value_kl *= 1 + err * n_steps / horizon
        trace.append({"currentKl": current, "nSteps": n_steps, "value": value_kl})
    return {"kl": kl, "gae": gae, "whiten": whiten, "policy": policy, "value": value, "adaptiveKl": trace}


def main():
    out = {"generatedBy": "scripts/reference/losses_reference.py", "torch": torch.__version__,
           "dpo": dpo_section(), "reward": reward_section(), **ppo_section()}
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "packages", "losses", "test", "fixtures", "losses_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    assert math.isclose(dpo_loss(T([-1.0]), T([-2.0]), T([-1.0]), T([-2.0]), ["sigmoid"])[0].item(), math.log(2))
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
