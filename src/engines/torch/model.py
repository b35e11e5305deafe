"""SteelLM in PyTorch: the block of src/core/model/gpt.ts and layers.ts, parameter for parameter.

Qwen1.5-shaped decoder: token embedding, n_layer pre-norm blocks (RMSNorm, grouped-query
attention with rotary positions and q/k/v biases, SwiGLU), final norm, output head tied to the
embedding or not. Matrices are stored [in, out] (y = x @ W) under the same names as the
checkpoint format, so module.named_parameters() is the canonical order of gpt.ts paramShapes.
"""
import math

import torch
import torch.nn.functional as F

from rng import Rng, normal_values

# Above this many parameters the init draws from torch's generator instead of our Rng: drawing
# a billion Box-Muller values one by one in Python takes most of an hour. Below it both engines
# start from identical weights for the same seed.
RNG_INIT_LIMIT = 10_000_000


def head_dim(cfg):
    return cfg["n_embd"] // cfg["n_head"]


def param_shapes(cfg):
    """Every parameter's name and shape in canonical order (gpt.ts paramShapes)."""
    d, ff, hd = cfg["n_embd"], cfg["intermediate_size"], head_dim(cfg)
    q, kv = cfg["n_head"] * hd, cfg["n_kv_head"] * hd
    shapes = {"wte": [cfg["vocab_size"], d]}
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        shapes[p + "ln_1.weight"] = [d]
        shapes[p + "attn.q.weight"], shapes[p + "attn.q.bias"] = [d, q], [q]
        shapes[p + "attn.k.weight"], shapes[p + "attn.k.bias"] = [d, kv], [kv]
        shapes[p + "attn.v.weight"], shapes[p + "attn.v.bias"] = [d, kv], [kv]
        shapes[p + "attn.o.weight"] = [q, d]
        shapes[p + "ln_2.weight"] = [d]
        shapes[p + "mlp.gate.weight"], shapes[p + "mlp.up.weight"] = [d, ff], [d, ff]
        shapes[p + "mlp.down.weight"] = [ff, d]
    shapes["ln_f.weight"] = [d]
    if not cfg["tie_embeddings"]:
        shapes["lm_head.weight"] = [d, cfg["vocab_size"]]
    return shapes


def initial_weights(cfg, seed):
    """gpt.ts initialValue: N(0, init_std) matrices, residual projections / sqrt(2 n_layer), biases 0,
    norms 1, drawn from Rng(seed) in canonical order (torch's generator above RNG_INIT_LIMIT)."""
    shapes = param_shapes(cfg)
    use_rng = sum(math.prod(s) for s in shapes.values()) <= RNG_INIT_LIMIT
    rng = Rng(seed)
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith(".bias"):
            out[name] = torch.zeros(shape)
        elif name.startswith("ln_") or ".ln_" in name:
            out[name] = torch.ones(shape)
        else:
            residual = name.endswith("attn.o.weight") or name.endswith("mlp.down.weight")
            std = cfg["init_std"] / math.sqrt(2 * cfg["n_layer"]) if residual else cfg["init_std"]
            if use_rng:
                values = normal_values(rng, math.prod(shape), std)
                out[name] = torch.tensor(values, dtype=torch.float64).to(torch.float32).reshape(shape)
            else:
                out[name] = torch.randn(shape, generator=gen) * std
    return out


class RMSNorm(torch.nn.Module):
    """layers.ts rmsNorm: x * rsqrt(mean(x^2) + eps) * weight."""

    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(x.dtype)


class Linear(torch.nn.Module):
    """layers.ts linear: y = x @ W (+ b) with W stored [in, out]."""

    def __init__(self, n_in, n_out, bias):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n_in, n_out))
        self.bias = torch.nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight.t(), self.bias)


def rotary_tables(seq_len, hd, theta, device):
    """layers.ts rotaryTables in the same float32 roundings: inv_freq[j] = theta^(-2j/hd),
    angle = t * inv_freq[j]; cos/sin [T, hd] with both halves repeated."""
    j = torch.arange(hd // 2, dtype=torch.float64)
    exponent = (2 * j / hd).float().double()
    inv_freq = (1 / (torch.tensor(float(theta), dtype=torch.float64) ** exponent).float().double()).float()
    t = torch.arange(seq_len, dtype=torch.float64)
    angle = torch.outer(t, inv_freq.double()).float().double()  # [T, hd/2]
    cos, sin = angle.cos().float(), angle.sin().float()
    return torch.cat((cos, cos), -1).to(device), torch.cat((sin, sin), -1).to(device)


def apply_rotary(x, cos, sin):
    """x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1); x is [B, H, T, hd]."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def causal_attention(q, k, v):
    """Softmax(q k^T / sqrt(hd) + causal mask) v on [B, H, T, hd]; fused where torch has it (2.0+)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # [B, H, T, T]
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(-1) @ v


class Attention(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, hd = cfg["n_embd"], head_dim(cfg)
        self.nh, self.nkv, self.hd = cfg["n_head"], cfg["n_kv_head"], hd
        self.q = Linear(d, self.nh * hd, True)
        self.k = Linear(d, self.nkv * hd, True)
        self.v = Linear(d, self.nkv * hd, True)
        self.o = Linear(self.nh * hd, d, False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.nh, self.hd).transpose(1, 2)  # [B, nh, T, hd]
        k = self.k(x).view(B, T, self.nkv, self.hd).transpose(1, 2)  # [B, nkv, T, hd]
        v = self.v(x).view(B, T, self.nkv, self.hd).transpose(1, 2)  # [B, nkv, T, hd]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.nkv != self.nh:  # query head h reads kv head h // (nh / nkv)
            k = k.repeat_interleave(self.nh // self.nkv, dim=1)
            v = v.repeat_interleave(self.nh // self.nkv, dim=1)
        y = causal_attention(q, k, v)  # [B, nh, T, hd]
        return self.o(y.transpose(1, 2).reshape(B, T, self.nh * self.hd))


class Mlp(torch.nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg):
        super().__init__()
        d, ff = cfg["n_embd"], cfg["intermediate_size"]
        self.gate = Linear(d, ff, False)
        self.up = Linear(d, ff, False)
        self.down = Linear(ff, d, False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = RMSNorm(cfg["n_embd"], cfg["norm_eps"])
        self.attn = Attention(cfg)
        self.ln_2 = RMSNorm(cfg["n_embd"], cfg["norm_eps"])
        self.mlp = Mlp(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.ln_1(x), cos, sin)
        return x + self.mlp(self.ln_2(x))


class SteelLM(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        self.wte = torch.nn.Parameter(torch.empty(cfg["vocab_size"], cfg["n_embd"]))
        self.h = torch.nn.ModuleList(Block(cfg) for _ in range(cfg["n_layer"]))
        self.ln_f = RMSNorm(cfg["n_embd"], cfg["norm_eps"])
        if not cfg["tie_embeddings"]:
            self.lm_head = Linear(cfg["n_embd"], cfg["vocab_size"], False)
        self._rope = {}

    @staticmethod
    def init(cfg, seed):
        return SteelLM.from_weights(cfg, initial_weights(cfg, seed))

    @staticmethod
    def from_weights(cfg, weights):
        """Every expected tensor present with the exact shape, nothing else (gpt.ts fromWeights)."""
        model = SteelLM(cfg)
        shapes = param_shapes(cfg)
        for name, shape in shapes.items():
            if name not in weights:
                raise ValueError(f'Weights are missing tensor "{name}" (shape {shape}).')
            if list(weights[name].shape) != shape:
                raise ValueError(f'Tensor "{name}" has shape {list(weights[name].shape)}; expected {shape}.')
        extra = [n for n in weights if n not in shapes]
        if extra:
            raise ValueError(f'Unexpected tensor "{extra[0]}" in weights for this config.')
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(weights[name])
        return model

    def rope(self, T, device):
        key = (T, str(device))
        if key not in self._rope:
            self._rope[key] = rotary_tables(T, head_dim(self.cfg), self.cfg["rope_theta"], device)
        return self._rope[key]

    def forward(self, idx, targets=None, mask=None, mask_total=None):
        """Logits [B, T, V] for token ids [B, T]; with targets, their loss (DDP hooks forward only)."""
        if targets is not None:
            return self.loss(idx, targets, mask, mask_total)
        return self.logits(self.hidden(idx))

    def hidden(self, idx):
        """The final normed hidden states [B, T, d] of token ids [B, T] (what the head projects)."""
        cos, sin = self.rope(idx.shape[1], idx.device)
        x = self.wte[idx]  # [B, T, d]
        for block in self.h:
            x = block(x, cos, sin)
        return self.ln_f(x)

    def logits(self, x):
        """The output head on hidden states [..., d]: logits [..., V] (evals.py projects only the positions it scores)."""
        head = self.wte if self.cfg["tie_embeddings"] else self.lm_head.weight.t()  # [V, d]
        return F.linear(x, head)

    def loss(self, idx, targets, mask=None, mask_total=None):
        """Mean next-token cross-entropy over all B*T positions (computed in float32), or with a mask
        (1 counts, 0 ignored; fine-tuning's assistant tokens) over the masked-in positions only (gpt.ts
        loss). `mask_total` replaces this slice's mask sum when the rows are one rank's share of a batch."""
        logits = self.forward(idx)  # [B, T, V]
        flat = logits.float().view(-1, logits.size(-1))
        if mask is None:
            return F.cross_entropy(flat, targets.reshape(-1))
        row_loss = F.cross_entropy(flat, targets.reshape(-1), reduction="none")  # [B*T]
        weights = mask.reshape(-1).float()
        # At least 1 in the denominator: a batch with no assistant token gives 0, not NaN.
        total = mask_total if mask_total is not None else torch.clamp(weights.sum(), min=1.0)
        return (row_loss * weights).sum() / total


def flops_per_token(cfg):
    """Training FLOPs per token (PaLM appendix B): 6 N for the matrices plus 12 L T d for attention."""
    n = sum(math.prod(s) for name, s in param_shapes(cfg).items() if name != "wte" or cfg["tie_embeddings"])
    return 6 * n + 12 * cfg["n_layer"] * cfg["seq_len"] * cfg["n_embd"]
