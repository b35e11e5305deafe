"""Samples from the fixed prompts: src/core/sample/generate.ts (sampleFromLogits, generate) and the
decoding half of src/core/tokenizer/bpe.ts. The prompts' ids come from `steelscope prepare`
(data/prompts.json), so no Python port of the encoder is needed."""
import json
import math

import torch

from rng import Rng

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class Decoder:
    """Bytes of every id from tokenizer.json (steelscope.tokenizer/1), as bpe.ts buildTokenBytes."""

    def __init__(self, tokenizer_json):
        spec = json.loads(tokenizer_json)
        vocab = spec["vocab_size"]
        self.eot_id = vocab - len(SPECIAL_TOKENS)
        token_bytes = [bytes([b]) for b in range(256)]
        for left, right in spec["merges"]:
            token_bytes.append(token_bytes[left] + token_bytes[right])
        token_bytes += [b""] * (self.eot_id - len(token_bytes))
        token_bytes += [s.encode() for s in SPECIAL_TOKENS]
        self.token_bytes = token_bytes

    def decode(self, ids):
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")


def sample_from_logits(logits, temperature, top_k, top_p, rng):
    """generate.ts sampleFromLogits: temperature, top-k, top-p, then one draw of rng.next().
    Candidates by logit, ties by lower id (a stable descending sort)."""
    if temperature <= 0:
        return int(torch.argmax(logits).item())  # the first (lowest) id among the largest
    order = torch.sort(logits.float().cpu(), descending=True, stable=True).indices
    k = min(top_k, len(order)) if top_k > 0 else len(order)
    top = order[:k].tolist()
    values = logits.double().cpu()[order[:k]].tolist()
    weights = [math.exp((v - values[0]) / temperature) for v in values]
    total = sum(weights)
    keep = len(top)
    if top_p < 1:
        cum = 0.0
        for i, w in enumerate(weights):
            cum += w / total
            if cum >= top_p:
                keep = i + 1
                break
    kept = weights[:keep]
    r = rng.next() * sum(kept)
    for i in range(keep):
        r -= kept[i]
        if r < 0:
            return top[i]
    return top[keep - 1]


@torch.no_grad()
def generate(model, prompt_ids, max_tokens, temperature, top_k, top_p, rng, stop_ids, device):
    """The new ids (without a sampled stop id); the context is the last seq_len ids (no KV cache:
    samples are a few dozen tokens every sample_every steps)."""
    ids = list(prompt_ids)
    out = []
    seq_len = model.cfg["seq_len"]
    for _ in range(max_tokens):
        context = torch.tensor([ids[-seq_len:]], dtype=torch.int64, device=device)
        logits = model(context)[0, -1].float()
        nxt = sample_from_logits(logits, temperature, top_k, top_p, rng)
        if nxt in stop_ids:
            break
        ids.append(nxt)
        out.append(nxt)
    return out


def sample_seed(cfg, step, i):
    """trainer.ts writeSamples: independent of the training stream."""
    return (cfg["seed"] + step * 7919 + i) & 0xFFFFFFFF


def write_samples(model, cfg, step, prompts, decoder, writer, device, log):
    for i, prompt in enumerate(prompts):
        seed = sample_seed(cfg, step, i)
        ids = generate(model, prompt["ids"], cfg["sample_tokens"], cfg["sample_temperature"], cfg["sample_top_k"],
                       cfg["sample_top_p"], Rng(seed), {decoder.eot_id}, device)
        text = decoder.decode(ids)
        writer.sample({"step": step, "prompt": prompt["text"], "text": text, "temperature": cfg["sample_temperature"],
                       "top_k": cfg["sample_top_k"], "top_p": cfg["sample_top_p"], "seed": seed})
        if i == 0:
            log(f"step {step}: sample {json.dumps(prompt['text'] + text, ensure_ascii=False)}")
