"""Token shards and seeded batches: src/core/data/shards.ts and loader.ts.

Shards are read through their versioned 24-byte header; BlockLoader walks exactly the order of
loader.ts (blocks of seq_len+1, a seeded permutation per epoch from rng.py), so both engines see
the same batches for the same seed and a saved cursor {seed, epoch, index} resumes either one.
"""
import struct

import torch

from rng import Rng

MAGIC = b"SSTOK\0\0\0"
VERSION = 1
HEADER_BYTES = 24
DTYPES = {1: (torch.int16, 2), 2: (torch.int32, 4)}  # uint16 / uint32 payloads, read as raw bits
EPOCH_STRIDE = 0x6C8E9CF5


class DataError(Exception):
    pass


def read_shard(path):
    """The tokens of a shard as an int64 tensor; anything but a valid version-1 shard is a DataError."""
    def corrupt(what):
        return DataError(f"Token shard {path} {what}. Delete it and let the trainer rebuild it (start a new run).")

    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DataError(f"Token shard {path} cannot be read ({err.strerror}). Start a new run to rebuild it.")
    if len(raw) < HEADER_BYTES:
        raise corrupt(f"is truncated ({len(raw)} bytes, shorter than its header)")
    if raw[:8] != MAGIC:
        raise corrupt("is not a steelscope token shard (wrong magic)")
    version, dtype, low, high = struct.unpack_from("<IIII", raw, 8)
    if version != VERSION:
        raise corrupt(f"has format version {version}; this build reads version {VERSION}")
    if dtype not in DTYPES:
        raise corrupt(f"has an unknown token type {dtype}")
    count = low + high * 2**32
    torch_dtype, width = DTYPES[dtype]
    expected = HEADER_BYTES + count * width
    if len(raw) != expected:
        state = "is truncated" if len(raw) < expected else "has trailing bytes"
        raise corrupt(f"{state} ({len(raw)} bytes, expected {expected} for {count} tokens)")
    payload = bytearray(raw[HEADER_BYTES:])
    if count == 0:
        return torch.zeros(0, dtype=torch.int64)
    tokens = torch.frombuffer(payload, dtype=torch_dtype)
    if torch_dtype == torch.int16:
        return tokens.to(torch.int64) & 0xFFFF
    return tokens.to(torch.int64) & 0xFFFFFFFF


def epoch_order(seed, epoch, num_blocks):
    return Rng((seed + epoch * EPOCH_STRIDE) & 0xFFFFFFFF).permutation(num_blocks)


class BlockLoader:
    """loader.ts BlockLoader: next_batch(b) gives (x, y) [b, seq_len] int64 tensors; with `weights`
    (laid out as the tokens: each token's loss weight as a target, fine-tuning's mask) (x, y, mask)."""

    def __init__(self, tokens, block_len, seed, cursor=None, label="The training data", weights=None):
        if block_len < 2:
            raise ValueError(f"block_len must be an integer >= 2 (seq_len + 1), got {block_len}")
        self.tokens = tokens
        self.block_len = block_len
        self.num_blocks = len(tokens) // block_len
        if self.num_blocks == 0:
            raise DataError(
                f"{label} has {len(tokens)} tokens, too few for one block of seq_len + 1 = {block_len} tokens "
                f"(at least {block_len} needed). Use more data or a smaller seq_len.")
        self.blocks = tokens[: self.num_blocks * block_len].view(self.num_blocks, block_len)
        self.weights = None
        if weights is not None:
            self.weights = weights[: self.num_blocks * block_len].to(torch.float32).view(self.num_blocks, block_len)
        self.seed = cursor["seed"] if cursor else seed
        self.epoch = cursor["epoch"] if cursor else 0
        self.index = cursor["index"] if cursor else 0
        if cursor:
            ok = all(isinstance(cursor[k], int) and cursor[k] >= 0 for k in ("seed", "epoch", "index"))
            if not ok or cursor["index"] > self.num_blocks:
                raise DataError(
                    f"{label} does not match the saved data cursor {cursor} ({self.num_blocks} blocks now). "
                    "The data or seq_len changed: start a new run.")
        self.order = epoch_order(self.seed, self.epoch, self.num_blocks)

    def next_batch(self, batch_size):
        rows = []
        for _ in range(batch_size):
            if self.index >= self.num_blocks:
                self.epoch += 1
                self.index = 0
                self.order = epoch_order(self.seed, self.epoch, self.num_blocks)
            rows.append(self.order[self.index])
            self.index += 1
        picked = torch.tensor(rows, dtype=torch.int64)
        blocks = self.blocks[picked]  # [b, seq_len + 1]
        x, y = blocks[:, :-1].contiguous(), blocks[:, 1:].contiguous()
        if self.weights is None:
            return x, y
        return x, y, self.weights[picked][:, 1:].contiguous()  # [b, seq_len]: the targets' weights

    def cursor(self):
        return {"seed": self.seed, "epoch": self.epoch, "index": self.index}


def eval_batches(tokens, block_len, batch_size, max_batches):
    """loader.ts evalBatches: the first blocks in order, up to max_batches full batches."""
    num_blocks = len(tokens) // block_len
    rows = min(batch_size, num_blocks)
    count = 0 if rows == 0 else min(max_batches, num_blocks // rows)
    out = []
    for b in range(count):
        blocks = tokens[b * rows * block_len: (b + 1) * rows * block_len].view(rows, block_len)
        out.append((blocks[:, :-1].contiguous(), blocks[:, 1:].contiguous()))
    return out


