"""Checkpoints in the format of src/core/train/checkpoint.ts and tensorfile.ts.

checkpoints/step-NNNNNNNN/ holds manifest.json, weights.{json,bin}, optimizer.{json,bin},
tokenizer.json and an empty DONE written last: the same fixed set of names the TypeScript engine
writes, so a checkpoint of either engine is sampled, served and resumed by either. Written into
a temp folder, renamed into place, then DONE. This engine only writes checkpoints: which are valid,
which is best and which are pruned is decided by src/shared/checkpoint.ts and
src/shared/node/checkpoints.ts, applied by the supervisor (src/cli/torchrun.ts) around it.
"""
import array
import hashlib
import json
import os
import shutil

import torch

from rundir import iso_now, write_file_atomic

TENSOR_FILE_FORMAT = "steelscope.tensors/1"
CHECKPOINT_FORMAT = "steelscope.checkpoint/1"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def checkpoint_dir_name(step):
    return f"step-{step:08d}"


def float32_bytes(t):
    """Raw float32 bytes of a tensor (little-endian hosts: x86, ARM), with or without numpy."""
    t = t.detach().to("cpu", torch.float32).contiguous()
    try:
        return t.numpy().tobytes()
    except (ImportError, RuntimeError):  # torch without numpy: slower, same bytes
        return array.array("f", t.flatten().tolist()).tobytes()


def encode_tensors(tensors):
    """tensorfile.ts encodeTensors: (index JSON text, payload bytes) of float32 little-endian data."""
    entries, chunks, offset = [], [], 0
    for name, t in tensors.items():
        data = float32_bytes(t)
        entries.append({"name": name, "shape": list(t.shape), "dtype": "float32", "offset": offset, "bytes": len(data)})
        chunks.append(data)
        offset += len(data)
    return json.dumps({"format": TENSOR_FILE_FORMAT, "tensors": entries}, indent=1), b"".join(chunks)


def read_tensors(json_path, bin_path):
    """tensorfile.ts readTensors: {name: float32 tensor}, every entry checked against the payload."""
    with open(json_path, "r", encoding="utf-8") as f:
        index = json.load(f)
    if not isinstance(index, dict) or index.get("format") != TENSOR_FILE_FORMAT:
        raise ValueError(f"{json_path}: not a {TENSOR_FILE_FORMAT} index")
    with open(bin_path, "rb") as f:
        payload = bytearray(f.read())
    out = {}
    for e in index["tensors"]:
        count = 1
        for n in e["shape"]:
            count *= n
        if e.get("dtype") != "float32" or e["bytes"] != 4 * count or e["offset"] + e["bytes"] > len(payload):
            raise ValueError(f"{bin_path}: tensor {e['name']} does not fit the file")
        chunk = payload[e["offset"]: e["offset"] + e["bytes"]]
        t = torch.frombuffer(chunk, dtype=torch.float32) if count else torch.zeros(0)
        out[e["name"]] = t.clone().reshape(e["shape"])
    return out


def save_checkpoint(run_dir, payload):
    """checkpoint.ts saveCheckpoint. payload: run_id, step, tokens, config, data, rng, optimizer, eval_loss,
    train_loss, weights, optimizer_state ({name: tensor}), tokenizer_json (text). Returns the folder."""
    root = os.path.join(run_dir, "checkpoints")
    os.makedirs(root, exist_ok=True)
    name = checkpoint_dir_name(payload["step"])
    final_dir = os.path.join(root, name)
    tmp_dir = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.mkdir(tmp_dir)
    weights_index, weights_bin = encode_tensors(payload["weights"])
    opt_index, opt_bin = encode_tensors(payload["optimizer_state"])
    files = [("weights.json", weights_index.encode()), ("weights.bin", weights_bin),
             ("optimizer.json", opt_index.encode()), ("optimizer.bin", opt_bin),
             ("tokenizer.json", payload["tokenizer_json"].encode())]
    records = []
    for file_name, data in files:
        write_file_atomic(os.path.join(tmp_dir, file_name), data)
        records.append({"name": file_name, "sha256": sha256(data), "bytes": len(data)})
    manifest = {"format": CHECKPOINT_FORMAT}
    for key in ("run_id", "step", "tokens", "config", "data", "rng", "optimizer", "eval_loss", "train_loss"):
        manifest[key] = payload[key]
    manifest.update({"createdAt": iso_now(), "tokenizer": "tokenizer.json", "files": records})
    write_file_atomic(os.path.join(tmp_dir, "manifest.json"), (json.dumps(manifest, indent=2) + "\n").encode())
    shutil.rmtree(final_dir, ignore_errors=True)  # a re-save of the same step replaces the old folder
    os.rename(tmp_dir, final_dir)
    with open(os.path.join(final_dir, "DONE"), "wb"):
        pass
    return final_dir


def load_checkpoint(path):
    """The checkpoint at `path`, which the CLI chose and verified with the one checkpoint module
    (src/shared/node/checkpoints.ts) before naming it: resume's --checkpoint, sft's base checkpoint."""
    with open(os.path.join(path, "manifest.json"), "r", encoding="utf-8") as f:
        manifest = json.load(f)
    with open(os.path.join(path, "tokenizer.json"), "r", encoding="utf-8") as f:
        tokenizer_json = f.read()
    return {
        "manifest": manifest,
        "weights": read_tensors(os.path.join(path, "weights.json"), os.path.join(path, "weights.bin")),
        "optimizer_state": read_tensors(os.path.join(path, "optimizer.json"), os.path.join(path, "optimizer.bin")),
        "tokenizer_json": tokenizer_json,
    }
