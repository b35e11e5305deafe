"""AdamW and the learning-rate schedule: src/core/train/adamw.ts and schedule.ts.

The optimizer is torch.optim.AdamW itself, with the decay groups of adamw.ts (weight decay on
matrices only, never norms or biases); adamw.ts follows its order of operations. Its moments are
saved as m.<param> / v.<param> with the update count, the layout of our checkpoint format.
"""
import math

import torch


def decays(shape):
    """adamw.ts AdamW.decays: matrices (embeddings and projections) only."""
    return len(shape) >= 2


def make_adamw(named_params, cfg, fused=False):
    named_params = list(named_params)
    groups = [
        {"params": [p for _, p in named_params if decays(p.shape)], "weight_decay": cfg["weight_decay"]},
        {"params": [p for _, p in named_params if not decays(p.shape)], "weight_decay": 0.0},
    ]
    kwargs = {"lr": cfg["lr"], "betas": (cfg["beta1"], cfg["beta2"]), "eps": cfg["adam_eps"]}
    if fused:
        kwargs["fused"] = True
    return torch.optim.AdamW([g for g in groups if g["params"]], **kwargs)


def learning_rate(step, cfg):
    """schedule.ts: linear warmup to lr, cosine decay to min_lr at max_steps, then flat."""
    lr, min_lr, warmup, max_steps = cfg["lr"], cfg["min_lr"], cfg["warmup_steps"], cfg["max_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= max_steps:
        return min_lr
    progress = (step - warmup) / max(1, max_steps - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


def adamw_step_count(optimizer):
    """Updates applied so far (0 before the first)."""
    for state in optimizer.state.values():
        step = state.get("step")
        return int(step.item() if torch.is_tensor(step) else step)
    return 0


def adamw_state(optimizer, named_params):
    """{m.<name>, v.<name>: float32 CPU tensor} in parameter order (zeros before the first update)."""
    out = {}
    for name, p in named_params:
        state = optimizer.state.get(p, {})
        for key, moment in (("exp_avg", "m"), ("exp_avg_sq", "v")):
            value = state.get(key)
            out[f"{moment}.{name}"] = (value.detach().float().cpu() if value is not None else torch.zeros(p.shape))
    return out


def load_adamw_state(optimizer, named_params, tensors, step):
    """Restores moments saved by adamw_state (either engine's) and the update count."""
    if step == 0:
        return
    saved = optimizer.state_dict()
    index = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    state = {}
    for name, p in named_params:
        entry = {}
        for key, moment in (("exp_avg", "m"), ("exp_avg_sq", "v")):
            t = tensors.get(f"{moment}.{name}")
            if t is None or list(t.shape) != list(p.shape):
                raise ValueError(f"optimizer state {moment}.{name} is missing or has the wrong size in the checkpoint")
            entry[key] = t
        entry["step"] = torch.tensor(float(step))
        state[index[id(p)]] = entry
    saved["state"] = state
    optimizer.load_state_dict(saved)
