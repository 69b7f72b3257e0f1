"""Reference numbers for prefkit's AdamW and gradient clipping, from torch.

Run with Debian's python (torch 1.13):
    /usr/bin/python3 scripts/reference/adamw_reference.py > packages/core/test/fixtures/adamw_reference.json

Two parameters get 5 steps of torch.optim.AdamW with explicit per-step gradients and
learning rates (as a schedule would set them), gradients clipped with
clip_grad_norm_(max_norm=1.0). The JSON holds the inputs, the pre-clip norms and the
parameters after every step, so the TypeScript test replays the same inputs.
"""
import json

import torch

torch.manual_seed(0)
shapes = {"w": [3, 4], "b": [5]}
init = {k: torch.randn(*s) for k, s in shapes.items()}
steps = 5
grads = [{k: (torch.randn(*s) * (3.0 if i % 2 == 0 else 0.1)) for k, s in shapes.items()} for i in range(steps)]
lrs = [1e-2, 2e-2, 3e-2, 1.5e-2, 5e-3]
config = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "max_grad_norm": 1.0}

params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
opt = torch.optim.AdamW(
    list(params.values()), lr=lrs[0], betas=tuple(config["betas"]), eps=config["eps"],
    weight_decay=config["weight_decay"],
)
norms, after = [], []
for i in range(steps):
    for g in opt.param_groups:
        g["lr"] = lrs[i]
    for k, p in params.items():
        p.grad = grads[i][k].clone()
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), config["max_grad_norm"])
    norms.append(float(norm))
    opt.step()
    after.append({k: p.detach().flatten().tolist() for k, p in params.items()})

print(json.dumps({
    "torch_version": torch.__version__,
    "config": config,
    "shapes": shapes,
    "init": {k: v.flatten().tolist() for k, v in init.items()},
    "grads": [{k: g.flatten().tolist() for k, g in step.items()} for step in grads],
    "lrs": lrs,
    "grad_norms": norms,
    "params_after": after,
}, indent=1))
