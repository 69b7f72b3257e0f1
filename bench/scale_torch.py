#!/usr/bin/env python3
"""PyTorch peer of the `scale` workload of prefkit's bench (bench/run.mjs --workload scale): the same training
step on random weights of a real config, one pair x 512 tokens (--seq), in plain torch (no transformers, no peft).

    /usr/bin/python3 bench/scale_torch.py --config '<config.json as JSON>' --method dpo --training full --mode fp32
    /usr/bin/python3 bench/scale_torch.py --config '...' --method reward --training lora --mode autocast \
        --frozen-bf16 --gradient-checkpointing

Prints one JSON line on stdout; progress goes to stderr. The step, modelled on bench/dpo_step_torch.py:
- the decoder of the config (Qwen2: q/k/v bias; Mistral: the sliding window is >= 512 here, so plain causal),
  eager attention with repeat_kv, HF's RMSNorm (float32 inside), rotate-half rope, SwiGLU, a tied or untied head;
- `--method dpo`: chosen and rejected rows concatenated (batch 2), summed completion log-probs through TRL's
  selective_log_softmax on float32 logits, the sigmoid loss (beta 0.1); the reference is a frozen deep copy
  (`--training full`) or the same model with the adapters off (`--training lora`);
- `--method reward`: a sequence classifier (score head on the last token, numLabels 1), -logsigmoid(r_c - r_r);
- LoRA (`--training lora`): every projection but the head becomes a frozen Linear plus A [r, in] / B [out, r]
  (r 16, alpha 32, no dropout; A Kaiming-uniform, B 0), PEFT's formula; a reward model also trains its score head
  (PEFT's modules_to_save);
- torch.optim.AdamW (lr 1e-6, no weight decay) with clip_grad_norm_(1.0), as HF's Trainer defaults.
`--mode autocast` runs the forward passes under torch.autocast("cpu", dtype=torch.bfloat16) (master weights stay
float32); `--frozen-bf16` stores the frozen weights (LoRA base, embedding) in bf16, what a user does when float32
weights would not fit; `--gradient-checkpointing` recomputes each layer in the backward pass
(torch.utils.checkpoint). 1 warm-up step, then `--steps` measured ones.

Memory: before building anything the script compares a lower bound of what the run needs (weights, gradients,
AdamW moments, the reference copy) with the memory it may use (the smaller of --budget-gib and MemAvailable
minus 1 GiB) and prints a `skipped` line when it cannot fit; it also caps its data segment (RLIMIT_DATA) at
that budget, so that running out turns into an `error` line instead of the kernel's OOM killer.
"""
import argparse
import copy
import json
import math
import platform
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from dpo_step_torch import log, peak_rss_mb, rotate_half  # the same directory (sys.path[0])

LORA_R, LORA_ALPHA = 16, 32


def mem_available_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("inf")


def uniform_(t, a):
    """In place U(-a, a), in float32 chunks for 16-bit tensors (one row block at a time)."""
    if t.dtype == torch.float32:
        return t.uniform_(-a, a)
    flat = t.view(-1)
    step = 1 << 24
    for i in range(0, flat.numel(), step):
        flat[i : i + step] = torch.empty(min(step, flat.numel() - i)).uniform_(-a, a).to(t.dtype)
    return t


class Linear(nn.Module):
    def __init__(self, n_in, n_out, bias, a, dtype):
        super().__init__()
        self.weight = nn.Parameter(uniform_(torch.empty(n_out, n_in, dtype=dtype), a))
        self.bias = nn.Parameter(torch.zeros(n_out, dtype=dtype)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class LoraLinear(nn.Module):
    """PEFT's lora.Linear without dropout: base(x) + (x A^T B^T) * alpha / r while enabled."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        n_out, n_in = base.weight.shape
        self.lora_A = nn.Parameter(torch.empty(LORA_R, n_in).uniform_(-1 / math.sqrt(n_in), 1 / math.sqrt(n_in)))
        self.lora_B = nn.Parameter(torch.zeros(n_out, LORA_R))
        self.scaling = LORA_ALPHA / LORA_R
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if not self.enabled:
            return y
        return y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling


class RMSNorm(nn.Module):
    """HF's LlamaRMSNorm: float32 inside, back to the input dtype."""

    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Attention(nn.Module):
    def __init__(self, c, a, dtype):
        super().__init__()
        h = c["hidden_size"]
        self.n_heads, self.n_kv = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = c.get("head_dim") or h // self.n_heads
        bias = c["model_type"] == "qwen2"
        self.q_proj = Linear(h, self.n_heads * self.head_dim, bias, a, dtype)
        self.k_proj = Linear(h, self.n_kv * self.head_dim, bias, a, dtype)
        self.v_proj = Linear(h, self.n_kv * self.head_dim, bias, a, dtype)
        self.o_proj = Linear(self.n_heads * self.head_dim, h, False, a, dtype)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.n_heads // self.n_kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return self.o_proj(torch.matmul(probs, v).transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, c, a, dtype):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = Linear(h, i, False, a, dtype)
        self.up_proj = Linear(h, i, False, a, dtype)
        self.down_proj = Linear(i, h, False, a, dtype)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c, a, dtype):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c, a, dtype)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c, a, dtype)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Model(nn.Module):
    """The decoder with an LM head (causal LM) or a 1-label score head (sequence classification)."""

    def __init__(self, c, classifier, dtype, checkpointing):
        super().__init__()
        self.c = c
        a = math.sqrt(3) * c.get("initializer_range", 0.02)
        self.embed_tokens = nn.Parameter(uniform_(torch.empty(c["vocab_size"], c["hidden_size"], dtype=dtype), a))
        self.layers = nn.ModuleList([Layer(c, a, dtype) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.classifier = classifier
        self.checkpointing = checkpointing
        if classifier:
            self.score = Linear(c["hidden_size"], 1, False, a, torch.float32)
        elif not c.get("tie_word_embeddings", False):
            self.lm_head = Linear(c["hidden_size"], c["vocab_size"], False, a, dtype)

    def hidden(self, ids):
        b, t = ids.shape
        head_dim = self.c.get("head_dim") or self.c["hidden_size"] // self.c["num_attention_heads"]
        theta = self.c.get("rope_theta", 10000.0)
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.arange(t, dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        window = self.c.get("sliding_window") if self.c["model_type"] == "mistral" else None
        keep = torch.ones(t, t, dtype=torch.bool).tril()
        if window is not None and window < t:
            keep &= torch.ones(t, t, dtype=torch.bool).triu(-(window - 1))
        mask = torch.zeros(t, t).masked_fill(~keep, float("-inf"))[None, None]
        x = F.embedding(ids, self.embed_tokens)
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask)
        return self.norm(x)

    def forward(self, ids):
        h = self.hidden(ids)
        if self.classifier:
            return self.score(h[:, -1])  # every row is full length: the last token is the last position
        head = self.embed_tokens if self.c.get("tie_word_embeddings", False) else self.lm_head.weight
        return F.linear(h, head)


def add_lora(model):
    for layer in model.layers:
        for parent, names in ((layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")), (layer.mlp, ("gate_proj", "up_proj", "down_proj"))):
            for n in names:
                setattr(parent, n, LoraLinear(getattr(parent, n)))
    model.embed_tokens.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, RMSNorm):
            m.weight.requires_grad_(False)
    if not model.classifier and hasattr(model, "lm_head"):
        model.lm_head.weight.requires_grad_(False)


def set_adapters(model, enabled):
    for m in model.modules():
        if isinstance(m, LoraLinear):
            m.enabled = enabled


def selective_log_softmax(logits, index):
    """TRL's selective_log_softmax for float32 logits: gather minus a per-row logsumexp."""
    selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    return selected - lse


def completion_logps(model, ids, mask, autocast):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(ids)
    logits = logits[:, :-1].float()
    return (selective_log_softmax(logits, ids[:, 1:]) * mask[:, 1:]).sum(-1)


def parameter_count(c, classifier):
    h = c["hidden_size"]
    kv = h // c["num_attention_heads"] * c["num_key_value_heads"]
    bias = h + 2 * kv if c["model_type"] == "qwen2" else 0
    layer = 2 * h * h + 2 * h * kv + bias + 3 * h * c["intermediate_size"] + 2 * h
    head = h if classifier else (0 if c.get("tie_word_embeddings") else c["vocab_size"] * h)
    return c["vocab_size"] * h + c["num_hidden_layers"] * layer + h + head


def needed_gib(a, c):
    """A lower bound of the run's memory: weights, gradients and AdamW moments of what trains, a reference copy."""
    n = parameter_count(c, a.method == "reward")
    frozen_bytes = 2 if a.frozen_bf16 else 4
    if a.training == "full":
        total = n * 4 * (1 + 1 + 2) + (n * 4 if a.method == "dpo" else 0)
    else:
        total = n * frozen_bytes
    return total / 2**30


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the model's config.json, as JSON")
    p.add_argument("--name", default="model")
    p.add_argument("--method", choices=["dpo", "reward"], required=True)
    p.add_argument("--training", choices=["full", "lora"], required=True)
    p.add_argument("--mode", choices=["fp32", "autocast"], required=True)
    p.add_argument("--frozen-bf16", action="store_true")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=2, help="measured steps after one warm-up step")
    p.add_argument("--seq", type=int, default=512, help="tokens per row: the first quarter prompt, the rest completion")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget-gib", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    c = json.loads(a.config)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    base = {
        "workload": "scale",
        "shape": a.name,
        "method": a.method,
        "training": f"lora r{LORA_R} all-linear" if a.training == "lora" else "full",
        "engine": "torch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mode": a.mode,
        "storage": "bfloat16 frozen, float32 trainable" if a.frozen_bf16 else "float32",
        "compute": "autocast bfloat16" if a.mode == "autocast" else "float32",
        "gradientCheckpointing": a.gradient_checkpointing,
        "layers": c["num_hidden_layers"],
        "rows": 2,
        "seqLen": a.seq,
        "steps": a.steps,
    }
    budget = min(a.budget_gib, mem_available_gib() - 1)
    need = needed_gib(a, c)
    if need > budget:
        print(json.dumps({**base, "skipped": f"needs at least {need:.1f} GiB (weights, gradients, AdamW, reference); "
                          f"{budget:.1f} GiB available to this run"}), flush=True)
        return
    limit = int(budget * 2**30)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    log(f"[torch scale {a.name} {a.mode}] torch {torch.__version__} on {platform.python_version()}, "
        f"{torch.get_num_threads()} threads, data segment capped at {budget:.1f} GiB")
    try:
        print(json.dumps({**base, **run(a, c)}), flush=True)
    except (MemoryError, RuntimeError) as e:
        message = str(e).strip().split("\n")[0]
        print(json.dumps({**base, "error": f"does not fit in {budget:.1f} GiB: {message}" if "alloc" in message.lower() or isinstance(e, MemoryError) else message,
                          **PROGRESS, "peakRssMB": round(peak_rss_mb(), 1)}), flush=True)


# What the run has measured so far (the warm-up step's seconds), for the `error` line when a later step fails.
PROGRESS = {}


def run(a, c):
    t0 = time.perf_counter()
    dtype = torch.bfloat16 if a.frozen_bf16 else torch.float32
    model = Model(c, a.method == "reward", dtype, a.gradient_checkpointing)
    reference = None
    if a.training == "lora":
        add_lora(model)
    elif a.method == "dpo":
        reference = copy.deepcopy(model)
        for q in reference.parameters():
            q.requires_grad_(False)
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-6, weight_decay=0.0)
    log(f"[torch scale {a.name} {a.mode}] built in {time.perf_counter() - t0:.1f}s, "
        f"{sum(q.numel() for q in params):,} trainable parameters, rss {peak_rss_mb():.0f} MB")
    g = torch.Generator().manual_seed(a.seed + 1)
    t = a.seq
    prompt = t // 4
    losses, times = [], []
    for i in range(1 + a.steps):
        ids = torch.cat([torch.randint(3, c["vocab_size"], (1, prompt), generator=g).repeat(2, 1),
                         torch.randint(3, c["vocab_size"], (2, t - prompt), generator=g)], dim=1)
        mask = torch.zeros(2, t)
        mask[:, prompt:] = 1.0
        start = time.perf_counter()
        if a.method == "dpo":
            with torch.no_grad():
                if reference is not None:
                    ref = completion_logps(reference, ids, mask, a.mode == "autocast")
                else:
                    set_adapters(model, False)
                    ref = completion_logps(model, ids, mask, a.mode == "autocast")
                    set_adapters(model, True)
            logps = completion_logps(model, ids, mask, a.mode == "autocast")
            margin = (logps[0] - ref[0]) - (logps[1] - ref[1])
            loss = -F.logsigmoid(0.1 * margin)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.mode == "autocast"):
                rewards = model(ids).float().squeeze(-1)
            loss = -F.logsigmoid(rewards[0] - rewards[1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        dt = time.perf_counter() - start
        losses.append(round(loss.item(), 6))
        if i > 0:
            times.append(dt)
        else:
            PROGRESS["warmupSeconds"] = round(dt, 4)
        log(f"[torch scale {a.name} {a.mode}] step {i}{' (warm-up)' if i == 0 else ''}: {dt:.2f}s "
            f"loss {loss.item():.6f}, rss {peak_rss_mb():.0f} MB")
    step = statistics.median(times)
    return {
        "stepSeconds": round(step, 4),
        "stepSecondsAll": [round(x, 4) for x in times],
        "warmupSeconds": PROGRESS["warmupSeconds"],
        "tokensPerSecond": round(2 * t / step, 2),
        "peakRssMB": round(peak_rss_mb(), 1),
        "losses": losses,
    }


if __name__ == "__main__":
    main()
