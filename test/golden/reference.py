#!/usr/bin/python3
"""Independent PyTorch reference of steelscope's model core (SteelLM), written from the spec.

Two modes:

  fixture  run a fixed batch through weights exported by the core, then 4 AdamW steps, and
           write what the core must reproduce (logits summary, loss and pre-clip grad norm at
           every step) as JSON.
      reference.py fixture --config CFG.json --weights DIR/weights --batch BATCH.json \
                           --out OUT.json [--steps 4]

  loglik   per-request log-likelihood of a continuation after a context (natural log, summed over
           the continuation's tokens), the context cut from the left so that context+continuation
           fits seq_len+1 tokens, as lm-evaluation-harness scores multiple choice. Writes a JSON list.
      reference.py loglik --config CFG.json --weights DIR/weights --requests REQ.json --out OUT.json
           (REQ.json: [{"context": [ids], "continuation": [ids]}, ...])

  bench    time training steps (forward + backward + clip + AdamW) of a config at a given
           number of threads and print tokens/s as one JSON line.
      reference.py bench --config CFG.json --threads N [--steps 10] [--warmup 2]

The model mirrors the spec of src/core/model/gpt.ts: Qwen1.5-shaped decoder, pre-norm RMSNorm,
HF-style rotary positions, bias on q/k/v only, SwiGLU, GQA, optional tied embeddings. Matrices
are stored [in, out] as in the core (y = x @ W), so weights load without transposes.
The optimizer is torch.optim.AdamW itself (decay only on rank >= 2 params) with
torch.nn.utils.clip_grad_norm_, i.e. the math src/core/train/adamw.ts claims to follow.
Everything is float32.
"""
import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

TENSOR_FILE_FORMAT = "steelscope.tensors/1"


# -----------------------------------------------------------------------------
# weights file: NAME.json (index) + NAME.bin (raw little-endian float32)

def read_tensors(stem):
    """Reads the core's tensor file pair; returns {name: float32 tensor} in file order."""
    with open(stem + ".json", "r", encoding="utf-8") as f:
        index = json.load(f)
    assert index["format"] == TENSOR_FILE_FORMAT, f"{stem}.json: not a {TENSOR_FILE_FORMAT} index"
    with open(stem + ".bin", "rb") as f:
        payload = f.read()
    out = {}
    for e in index["tensors"]:
        count = math.prod(e["shape"])
        assert e["dtype"] == "float32" and e["bytes"] == 4 * count
        arr = np.frombuffer(payload, dtype="<f4", count=count, offset=e["offset"])
        out[e["name"]] = torch.from_numpy(arr.copy()).reshape(e["shape"])
    return out


# -----------------------------------------------------------------------------
# the model

def param_shapes(cfg):
    """Canonical parameter names and shapes (matrices [in, out])."""
    d, V, ff = cfg["n_embd"], cfg["vocab_size"], cfg["intermediate_size"]
    hd = d // cfg["n_head"]
    q_out, kv_out = cfg["n_head"] * hd, cfg["n_kv_head"] * hd
    shapes = {"wte": [V, d]}
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": [d],
            p + "attn.q.weight": [d, q_out], p + "attn.q.bias": [q_out],
            p + "attn.k.weight": [d, kv_out], p + "attn.k.bias": [kv_out],
            p + "attn.v.weight": [d, kv_out], p + "attn.v.bias": [kv_out],
            p + "attn.o.weight": [q_out, d],
            p + "ln_2.weight": [d],
            p + "mlp.gate.weight": [d, ff],
            p + "mlp.up.weight": [d, ff],
            p + "mlp.down.weight": [ff, d],
        })
    shapes["ln_f.weight"] = [d]
    if not cfg["tie_embeddings"]:
        shapes["lm_head.weight"] = [d, V]
    return shapes


def random_weights(cfg, seed):
    """Weights for the bench only (values do not affect timing): normal(0, init_std), norms 1, biases 0."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            out[name] = torch.ones(shape)
        elif name.endswith(".bias"):
            out[name] = torch.zeros(shape)
        else:
            out[name] = torch.randn(shape, generator=g) * cfg["init_std"]
    return out


def rms_norm(x, w, eps):
    # x: (..., d), w: (d,)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(T, hd, theta):
    """HF rotate_half layout: cos/sin = cat(angle, angle), each (T, hd)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # (hd/2,)
    t = torch.arange(T, dtype=torch.float32)                                          # (T,)
    angle = torch.outer(t, inv_freq)                                                  # (T, hd/2)
    emb = torch.cat((angle, angle), dim=-1)                                           # (T, hd)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    # x: (B, nh, T, hd), cos/sin: (T, hd)
    return x * cos + rotate_half(x) * sin


class SteelLMRef(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        shapes = param_shapes(cfg)
        missing = set(shapes) - set(weights)
        extra = set(weights) - set(shapes)
        assert not missing and not extra, f"weights do not match the spec: missing {sorted(missing)}, extra {sorted(extra)}"
        # ParameterDict keys may not contain '.', so keep an ordered name list beside it.
        self.names = list(shapes)
        self.p = torch.nn.ParameterList()
        for name in self.names:
            w = weights[name]
            assert list(w.shape) == shapes[name], f"{name}: shape {list(w.shape)}, spec {shapes[name]}"
            self.p.append(torch.nn.Parameter(w.clone().float()))
        self.index = {name: i for i, name in enumerate(self.names)}

    def w(self, name):
        return self.p[self.index[name]]

    def named(self):
        return [(n, self.w(n)) for n in self.names]

    def attention(self, x, i, cos, sin):
        cfg = self.cfg
        B, T, d = x.shape
        nh, nkv = cfg["n_head"], cfg["n_kv_head"]
        hd = d // nh
        pre = f"h.{i}.attn."
        q = x @ self.w(pre + "q.weight") + self.w(pre + "q.bias")  # (B, T, nh*hd)
        k = x @ self.w(pre + "k.weight") + self.w(pre + "k.bias")  # (B, T, nkv*hd)
        v = x @ self.w(pre + "v.weight") + self.w(pre + "v.bias")  # (B, T, nkv*hd)
        q = q.view(B, T, nh, hd).transpose(1, 2)                   # (B, nh, T, hd)
        k = k.view(B, T, nkv, hd).transpose(1, 2)                  # (B, nkv, T, hd)
        v = v.view(B, T, nkv, hd).transpose(1, 2)                  # (B, nkv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # GQA: query head h reads kv head h // (nh / nkv)
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)                        # (B, nh, T, hd)
        v = v.repeat_interleave(rep, dim=1)                        # (B, nh, T, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)            # (B, nh, T, T)
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = att @ v                                                # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, nh * hd)               # (B, T, nh*hd)
        return y @ self.w(pre + "o.weight")                        # (B, T, d)

    def mlp(self, x, i):
        pre = f"h.{i}.mlp."
        gate = x @ self.w(pre + "gate.weight")                     # (B, T, ff)
        up = x @ self.w(pre + "up.weight")                         # (B, T, ff)
        return (F.silu(gate) * up) @ self.w(pre + "down.weight")   # (B, T, d)

    def forward(self, idx):
        cfg = self.cfg
        B, T = idx.shape
        eps = cfg["norm_eps"]
        cos, sin = rope_cos_sin(T, cfg["n_embd"] // cfg["n_head"], cfg["rope_theta"])
        x = self.w("wte")[idx]                                     # (B, T, d)
        for i in range(cfg["n_layer"]):
            x = x + self.attention(rms_norm(x, self.w(f"h.{i}.ln_1.weight"), eps), i, cos, sin)
            x = x + self.mlp(rms_norm(x, self.w(f"h.{i}.ln_2.weight"), eps), i)
        x = rms_norm(x, self.w("ln_f.weight"), eps)
        head = self.w("wte").t() if cfg["tie_embeddings"] else self.w("lm_head.weight")  # (d, V)
        return x @ head                                            # (B, T, V)

    def loss(self, idx, targets):
        logits = self.forward(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1)), logits


# -----------------------------------------------------------------------------
# optimizer and schedule (same math as src/core/train/{adamw,schedule}.ts)

def learning_rate(step, cfg):
    """Linear warmup to lr, cosine decay to min_lr at max_steps, then flat."""
    lr, min_lr, warmup, max_steps = cfg["lr"], cfg["min_lr"], cfg["warmup_steps"], cfg["max_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= max_steps:
        return min_lr
    progress = (step - warmup) / max(1, max_steps - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def make_optimizer(model, cfg):
    decay = [p for _, p in model.named() if p.dim() >= 2]
    no_decay = [p for _, p in model.named() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["adam_eps"])


def train_step(model, opt, cfg, x, y, step):
    """One step as the core's trainer does it. Returns (loss, pre-clip grad norm, lr, logits)."""
    opt.zero_grad(set_to_none=True)
    loss, logits = model.loss(x, y)
    loss.backward()
    params = [p for _, p in model.named()]
    if cfg["grad_clip"] > 0:
        # coef = min(1, clip / (norm + 1e-6)), the same as adamw.ts
        norm = torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    lr = learning_rate(step, cfg)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    return loss.item(), norm.item(), lr, logits


# -----------------------------------------------------------------------------
# fixture mode

def summary_positions(B, T, V, count=256, rows=8, seed=0):
    """Deterministic (b, t, v) logit positions and (b, t) rows, corners always included."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, B, (count,), generator=g).tolist()
    t = torch.randint(0, T, (count,), generator=g).tolist()
    v = torch.randint(0, V, (count,), generator=g).tolist()
    positions = [[0, 0, 0], [B - 1, T - 1, V - 1]] + [list(p) for p in zip(b, t, v)][: count - 2]
    rb = torch.randint(0, B, (rows,), generator=g).tolist()
    rt = torch.randint(0, T, (rows,), generator=g).tolist()
    row_list = [[0, 0], [B - 1, T - 1]] + [list(r) for r in zip(rb, rt)][: rows - 2]
    return positions, row_list


def logits_summary(logits, positions, rows):
    """A few hundred logits at fixed positions plus the logsumexp of a few whole rows."""
    lg = logits.detach()
    values = [lg[b, t, v].item() for b, t, v in positions]
    lse = [torch.logsumexp(lg[b, t], dim=-1).item() for b, t in rows]
    return {"values": values, "row_logsumexp": lse}


def run_fixture(args):
    torch.set_num_threads(1)  # deterministic reductions, and this is small
    with open(args.config, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    with open(args.batch, "r", encoding="utf-8") as f:
        batch = json.load(f)
    x = torch.tensor(batch["x"], dtype=torch.long)  # (B, T)
    y = torch.tensor(batch["y"], dtype=torch.long)  # (B, T)
    B, T = x.shape
    model = SteelLMRef(cfg, read_tensors(args.weights))
    opt = make_optimizer(model, cfg)
    positions, rows = summary_positions(B, T, cfg["vocab_size"])

    steps = []
    logits_initial = None
    for step in range(args.steps):
        loss, norm, lr, logits = train_step(model, opt, cfg, x, y, step)
        if step == 0:
            logits_initial = logits_summary(logits, positions, rows)
        steps.append({"step": step, "loss": loss, "grad_norm": norm, "lr": lr})
    # one more forward/backward at the weights after the last update (no update)
    opt.zero_grad(set_to_none=True)
    loss, logits = model.loss(x, y)
    loss.backward()
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for _, p in model.named()]))
    steps.append({"step": args.steps, "loss": loss.item(), "grad_norm": norm.item(), "lr": None})

    out = {
        "torch_version": torch.__version__,
        "positions": positions,
        "rows": rows,
        "logits_initial": logits_initial,
        "logits_final": logits_summary(logits, positions, rows),
        "steps": steps,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


# -----------------------------------------------------------------------------
# loglik mode

def run_loglik(args):
    with open(args.config, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    with open(args.requests, "r", encoding="utf-8") as f:
        requests = json.load(f)
    model = SteelLMRef(cfg, read_tensors(args.weights))
    out = []
    with torch.no_grad():
        for req in requests:
            ids = req["context"] + req["continuation"]
            ids = ids[-(cfg["seq_len"] + 1):]
            n = len(req["continuation"])
            x = torch.tensor([ids[:-1]], dtype=torch.long)
            logp = F.log_softmax(model.forward(x)[0].double(), dim=-1)     # (T, V)
            targets = ids[len(ids) - n:]
            rows = range(len(ids) - n - 1, len(ids) - 1)
            out.append(sum(float(logp[r, t]) for r, t in zip(rows, targets)))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


# -----------------------------------------------------------------------------
# bench mode

def run_bench(args):
    torch.set_num_threads(args.threads)
    with open(args.config, "r", encoding="utf-8") as f:
        cfg = json.load(f)
    B, T, V = cfg["batch_size"], cfg["seq_len"], cfg["vocab_size"]
    model = SteelLMRef(cfg, random_weights(cfg, cfg["seed"]))
    opt = make_optimizer(model, cfg)
    g = torch.Generator().manual_seed(cfg["seed"])
    tokens = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = tokens[:, :-1], tokens[:, 1:]
    times = []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        train_step(model, opt, cfg, x, y, step)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "step_s_median": med,
        "tok_per_s": B * T / med,
    }))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    fx = sub.add_parser("fixture")
    fx.add_argument("--config", required=True)
    fx.add_argument("--weights", required=True, help="stem of the tensor file pair (without .json/.bin)")
    fx.add_argument("--batch", required=True, help='JSON {"x": [[...]], "y": [[...]]}')
    fx.add_argument("--out", required=True)
    fx.add_argument("--steps", type=int, default=4)
    ll = sub.add_parser("loglik")
    ll.add_argument("--config", required=True)
    ll.add_argument("--weights", required=True, help="stem of the tensor file pair (without .json/.bin)")
    ll.add_argument("--requests", required=True)
    ll.add_argument("--out", required=True)
    bn = sub.add_parser("bench")
    bn.add_argument("--config", required=True)
    bn.add_argument("--threads", type=int, default=1)
    bn.add_argument("--steps", type=int, default=10)
    bn.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args(argv)
    if args.mode == "fixture":
        run_fixture(args)
    elif args.mode == "loglik":
        run_loglik(args)
    else:
        run_bench(args)


if __name__ == "__main__":
    main(sys.argv[1:])
