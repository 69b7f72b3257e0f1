#!/usr/bin/env python3
"""Reference values for the DPO options LD-DPO (`ld_alpha`), WPO (`use_weighting`) and TR-DPO
(`sync_ref_model`), in float64 torch.

The code below transcribes current TRL (trl/trainer/dpo_trainer.py `DPOTrainer._compute_loss` and
`compute_ref_log_probs`, trl/trainer/callbacks.py `SyncRefModelCallback._sync_target_model`) on a batch of
logits, token ids and completion masks, so the TypeScript side can run its whole path (per-token log-probs →
weights → `dpoLoss`) on the same numbers. Inputs are multiples of 1/64 so they are exact in float32.

Run with Debian's python (torch 1.13):
    /usr/bin/python3 scripts/reference/dpo_options_reference.py
Writes packages/losses/test/fixtures/dpo_options_reference.json.
"""
import json
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

B, T, V = 3, 7, 6  # 3 pairs, 6 rows; rows are [chosen..., rejected...] as TRL's collator
BETA = 0.1
# (prompt length, completion length) per row: shared lengths and tails differ per pair, one pair has a tie.
ROWS = [(2, 4), (3, 2), (2, 3), (2, 2), (3, 4), (2, 3)]


def grid(gen, *shape, scale):
    """Normal noise rounded to multiples of 1/64 (exact in float32)."""
    return torch.round(torch.randn(*shape, generator=gen) * scale * 64) / 64


def selective_log_softmax(logits, index):
    """TRL's `selective_log_softmax` (trl/trainer/utils.py), in its float64 branch."""
    return torch.gather(logits.log_softmax(-1), dim=-1, index=index.unsqueeze(-1)).squeeze(-1)


def batch():
    gen = torch.Generator().manual_seed(13)
    logits = grid(gen, 2 * B, T, V, scale=1.5)
    ref_logits = grid(gen, 2 * B, T, V, scale=1.5)
    input_ids = torch.randint(0, V, (2 * B, T), generator=gen)
    completion_mask = torch.zeros(2 * B, T, dtype=torch.long)
    for i, (p, c) in enumerate(ROWS):
        completion_mask[i, p:p + c] = 1
    return logits, ref_logits, input_ids, completion_mask


def per_token(logits, input_ids, completion_mask):
    """The first lines of `_compute_loss`: shifted per-token log-probs, 0 off the completion."""
    shift_logits = logits[..., :-1, :]
    shift_labels = input_ids[..., 1:]
    shift_completion_mask = completion_mask[..., 1:]
    per_token_logps = selective_log_softmax(shift_logits, shift_labels)
    per_token_logps = per_token_logps.masked_fill(shift_completion_mask == 0, 0.0)
    return shift_logits, shift_labels, shift_completion_mask, per_token_logps


def ld_sums(per_token_logps, shift_completion_mask, ld_alpha):
    """The `ld_alpha` branch of `_compute_loss` (and of `compute_ref_log_probs`)."""
    if ld_alpha is None:
        return per_token_logps.sum(dim=1)
    comp_pos = shift_completion_mask.cumsum(dim=1)
    comp_lens = shift_completion_mask.sum(dim=1).long()
    chosen_lens, rejected_lens = comp_lens.chunk(2, dim=0)
    shared_lens = torch.minimum(chosen_lens, rejected_lens)
    shared_lens = torch.cat([shared_lens, shared_lens], dim=0)
    shared_mask = (comp_pos > 0) & (comp_pos <= shared_lens.unsqueeze(1))
    tail_mask = comp_pos > shared_lens.unsqueeze(1)
    shared_logps = (per_token_logps * shared_mask).sum(dim=1)
    tail_logps = (per_token_logps * tail_mask).sum(dim=1)
    return shared_logps + ld_alpha * tail_logps


def compute_loss(logits, ref_logits, input_ids, completion_mask, loss_types, loss_weights, ld_alpha, use_weighting):
    """`_compute_loss` for reverse KL with the loss types used here, plus TRL's logged rewards/logps."""
    shift_logits, shift_labels, shift_completion_mask, per_token_logps = per_token(logits, input_ids, completion_mask)
    logps = ld_sums(per_token_logps, shift_completion_mask, ld_alpha)
    chosen_logps, rejected_logps = logps.chunk(2, dim=0)
    with torch.no_grad():
        _, _, _, ref_per_token_logps = per_token(ref_logits, input_ids, completion_mask)
        ref_logps = ld_sums(ref_per_token_logps, shift_completion_mask, ld_alpha)
    ref_chosen_logps, ref_rejected_logps = ref_logps.chunk(2, dim=0)
    chosen_scores = chosen_logps - ref_chosen_logps
    rejected_scores = rejected_logps - ref_rejected_logps
    delta_score = chosen_scores - rejected_scores
    loss = 0.0
    weights = None
    for loss_type, loss_weight in zip(loss_types, loss_weights):
        if loss_type == "sigmoid":
            per_sequence_loss = -F.logsigmoid(BETA * delta_score)
        elif loss_type == "ipo":
            chosen_mask, rejected_mask = completion_mask.chunk(2, dim=0)
            chosen_avg_score = chosen_scores / chosen_mask.sum(dim=1).clamp(min=1.0)
            rejected_avg_score = rejected_scores / rejected_mask.sum(dim=1).clamp(min=1.0)
            per_sequence_loss = (chosen_avg_score - rejected_avg_score - 1 / (2 * BETA)) ** 2
        elif loss_type == "sft":
            chosen_logits, _ = shift_logits.chunk(2, dim=0)
            chosen_labels, _ = shift_labels.chunk(2, dim=0)
            chosen_mask, _ = shift_completion_mask.chunk(2, dim=0)
            batch_loss = F.cross_entropy(chosen_logits[chosen_mask.bool()], chosen_labels[chosen_mask.bool()])
            per_sequence_loss = batch_loss.expand(chosen_logits.size(0))
        else:
            raise ValueError(loss_type)
        if use_weighting:
            completion_lengths = shift_completion_mask.sum(dim=1).clamp_min(1)
            with torch.no_grad():
                lse1 = torch.logsumexp(shift_logits, dim=-1)
                lse2 = torch.logsumexp(2.0 * shift_logits, dim=-1)
                log_denom = lse2 - 2.0 * lse1
                aligned_logps = (per_token_logps - log_denom) * shift_completion_mask
            mean_logps = aligned_logps.sum(dim=1) / completion_lengths
            weights = torch.exp(mean_logps)
            chosen_weights, rejected_weights = weights.chunk(2, dim=0)
            per_sequence_loss = per_sequence_loss * (chosen_weights * rejected_weights)
        loss = loss + per_sequence_loss.mean() * loss_weight
    out = {
        "loss": loss,
        "chosenLogps": chosen_logps,
        "rejectedLogps": rejected_logps,
        "refChosenLogps": ref_chosen_logps,
        "refRejectedLogps": ref_rejected_logps,
        "chosenRewards": BETA * chosen_scores,
        "rejectedRewards": BETA * rejected_scores,
    }
    if weights is not None:
        chosen_weights, rejected_weights = weights.chunk(2, dim=0)
        out["sequenceWeights"] = weights
        out["pairWeights"] = chosen_weights * rejected_weights
    return out


def options_section():
    logits, ref_logits, input_ids, completion_mask = batch()
    cases = []
    for loss_types, loss_weights, ld_alpha, use_weighting in [
        (["sigmoid"], [1.0], 0.5, False),
        (["sigmoid"], [1.0], 0.0, False),
        (["ipo"], [1.0], 0.25, False),
        (["sigmoid"], [1.0], None, True),
        (["sigmoid", "sft"], [1.0, 0.5], None, True),
        (["ipo"], [1.0], None, True),
        (["sigmoid"], [1.0], 0.5, True),
    ]:
        leaf = logits.clone().requires_grad_(True)
        out = compute_loss(leaf, ref_logits, input_ids, completion_mask, loss_types, loss_weights, ld_alpha,
                           use_weighting)
        (grad,) = torch.autograd.grad(out["loss"], [leaf])
        case = {"lossType": loss_types, "lossWeights": loss_weights, "ldAlpha": ld_alpha,
                "useWeighting": use_weighting, "grad": grad}
        case.update(out)
        cases.append(case)
    return {"beta": BETA, "batchSize": B, "logits": logits, "refLogits": ref_logits, "inputIds": input_ids,
            "completionMask": completion_mask, "cases": cases}


def sync_section():
    """`SyncRefModelCallback._sync_target_model` applied at two sync steps with the policy of each step."""
    gen = torch.Generator().manual_seed(5)
    alpha = 0.6
    ref0 = grid(gen, 3, 4, scale=1.0)
    policies = [grid(gen, 3, 4, scale=1.0) for _ in range(2)]
    target = ref0.clone()
    after = []
    for copy_param in policies:
        target.data.mul_(1.0 - alpha).add_(copy_param.data, alpha=alpha)
        after.append(target.clone())
    return {"alpha": alpha, "ref0": ref0, "policies": policies, "after": after}


def clean(x):
    if isinstance(x, torch.Tensor):
        return x.detach().tolist()
    if isinstance(x, list):
        return [clean(v) for v in x]
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    return x


def main():
    out = {"generatedBy": "scripts/reference/dpo_options_reference.py", "torch": torch.__version__,
           "options": options_section(), "sync": sync_section()}
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "packages", "losses", "test", "fixtures", "dpo_options_reference.json")
    with open(path, "w") as f:
        json.dump(clean(out), f, indent=1, allow_nan=False)
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
