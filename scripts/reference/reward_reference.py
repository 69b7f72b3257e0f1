"""Golden values for prefkit's sequence-classification (reward-model) head.

Builds a tiny random LlamaForSequenceClassification checkpoint (body + `score.weight`
[num_labels, hidden], no lm_head) and the scores transformers' model would give at the LAST
REAL token of each row (found from the attention mask, never from pad-id equality), with
position ids cumsum(mask) - 1 as TRL's get_reward passes them. The decoder forward is
`modeling_reference.forward` (HF Llama, op for op). Rows contain the eos/pad id (2) inside
their real tokens and at their ends, so pad-id pooling would pick the wrong token.

Run with Debian's python (torch 1.13 + numpy):

    /usr/bin/python3 scripts/reference/reward_reference.py
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modeling_reference import ModelArgs, forward, hf_config_json, random_weights  # noqa: E402
from safetensors_io import save_safetensors  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO_ROOT, "packages", "models", "test", "sequence-classification", "fixtures")
PAD = 2  # = eos

CONFIG = {
    "architectures": ["LlamaForSequenceClassification"],
    "model_type": "llama",
    "vocab_size": 32,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": PAD,
    "id2label": {"0": "LABEL_0"},
    "label2id": {"LABEL_0": 0},
    "initializer_range": 0.02,
}

# Real tokens of each row: eos (= pad) inside the text and at the end.
ROWS = [
    [1, 5, 2, 7, 9, 11, 2],
    [1, 3, 2],
    [1, 4, 6, 2, 2, 8, 2],
]


def pad(rows, side):
    t = max(len(r) for r in rows)
    ids, mask = [], []
    for r in rows:
        n = t - len(r)
        if side == "right":
            ids.append(r + [PAD] * n)
            mask.append([1] * len(r) + [0] * n)
        else:
            ids.append([PAD] * n + r)
            mask.append([0] * n + [1] * len(r))
    return ids, mask


def scores(args, weights, score_w, ids, mask):
    m = torch.tensor(mask, dtype=torch.long)
    pos = (m.cumsum(1) - 1).clamp(min=0)
    # forward() also applies an LM head; hand it a dummy one (only the hidden states are used).
    w = dict(weights, **{"lm_head.weight": np.zeros((1, args.hidden_size), np.float32)})
    _, hs = forward(args, w, ids, mask, pos)
    hidden = hs[-1]
    per_token = torch.nn.functional.linear(hidden, torch.as_tensor(score_w))  # [B, T, 1]
    # last real token: the largest index with mask 1
    t = m.shape[1]
    last = (m * torch.arange(1, t + 1)).argmax(-1)
    pooled = per_token[torch.arange(m.shape[0]), last]
    return pooled, per_token, last


def main():
    rng = np.random.default_rng(1234)
    args = ModelArgs.from_config(CONFIG)
    weights = random_weights(args, rng, embed_std=1.0)
    weights.pop("lm_head.weight", None)
    score_w = (rng.standard_normal((1, CONFIG["hidden_size"])) / 4.0).astype(np.float32)
    os.makedirs(os.path.join(OUT, "tiny-llama-rm"), exist_ok=True)
    save_safetensors(
        os.path.join(OUT, "tiny-llama-rm", "model.safetensors"),
        dict(weights, **{"score.weight": score_w}),
        "F32",
        metadata={"format": "pt"},
    )
    with open(os.path.join(OUT, "tiny-llama-rm", "config.json"), "w") as f:
        f.write(hf_config_json(CONFIG, "F32"))

    out = {"pad_token_id": PAD, "rows": ROWS, "cases": {}}
    for side in ("right", "left"):
        ids, mask = pad(ROWS, side)
        pooled, per_token, last = scores(args, weights, score_w, ids, mask)
        out["cases"][side] = {
            "input_ids": ids,
            "attention_mask": mask,
            "last_index": last.tolist(),
            "scores": pooled[:, 0].tolist(),
            "token_scores": per_token[..., 0].tolist(),
        }
    single = []
    for r in ROWS:
        pooled, _, _ = scores(args, weights, score_w, [r], [[1] * len(r)])
        single.append(float(pooled[0, 0]))
    out["unpadded_scores"] = single
    with open(os.path.join(OUT, "reward-golden.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v["scores"] for k, v in out["cases"].items()}), single)


if __name__ == "__main__":
    main()
