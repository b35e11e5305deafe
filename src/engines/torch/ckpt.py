"""Checkpoints in the format of src/core/train/checkpoint.ts and tensorfile.ts.

checkpoints/step-NNNNNNNN/ holds manifest.json, weights.{json,bin}, optimizer.{json,bin},
tokenizer.json and an empty DONE written last: the same fixed set of names the TypeScript engine
writes, so a checkpoint of either engine is sampled, served and resumed by either. Written into
a temp folder, renamed into place, then DONE; a folder without DONE or with a file whose sha256
does not match its manifest does not exist for any reader.
"""
import array
import hashlib
import json
import os
import re
import shutil

import torch

from rundir import iso_now, write_file_atomic

TENSOR_FILE_FORMAT = "steelscope.tensors/1"
CHECKPOINT_FORMAT = "steelscope.checkpoint/1"
DIR_NAME = re.compile(r"^step-(\d{8,})$")


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


def verify_checkpoint(path):
    """(manifest, None) when DONE, the manifest and every file's sha256 check out; else (None, reason)."""
    if not os.path.exists(os.path.join(path, "DONE")):
        return None, "no DONE marker (the write did not finish)"
    try:
        with open(os.path.join(path, "manifest.json"), "r", encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        return None, f"manifest.json unreadable: {err}"
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT \
            or not isinstance(manifest.get("files"), list):
        return None, f"manifest.json is not a {CHECKPOINT_FORMAT} manifest"
    for entry in manifest["files"]:
        file_path = os.path.join(path, os.path.basename(str(entry.get("name"))))
        if not os.path.isfile(file_path):
            return None, f"{entry.get('name')} is missing"
        with open(file_path, "rb") as f:
            if sha256(f.read()) != entry.get("sha256"):
                return None, f"{entry['name']} does not match its sha256"
    return manifest, None


def list_checkpoints(run_dir):
    """[(step, folder)] by ascending step, complete or not (temp folders excluded)."""
    root = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        m = DIR_NAME.match(name)
        if m and os.path.isdir(os.path.join(root, name)):
            found.append((int(m.group(1)), os.path.join(root, name)))
    return sorted(found)


def latest_valid_checkpoint(run_dir, on_skip):
    """The newest checkpoint that verifies, as (folder, manifest); each one passed over goes to on_skip."""
    for step, path in reversed(list_checkpoints(run_dir)):
        manifest, reason = verify_checkpoint(path)
        if manifest is not None:
            return path, manifest
        on_skip(step, path, reason)
    return None


def load_checkpoint(path):
    manifest, reason = verify_checkpoint(path)
    if manifest is None:
        raise ValueError(f"Checkpoint {path} cannot be used: {reason}.")
    with open(os.path.join(path, "tokenizer.json"), "r", encoding="utf-8") as f:
        tokenizer_json = f.read()
    return {
        "manifest": manifest,
        "weights": read_tensors(os.path.join(path, "weights.json"), os.path.join(path, "weights.bin")),
        "optimizer_state": read_tensors(os.path.join(path, "optimizer.json"), os.path.join(path, "optimizer.bin")),
        "tokenizer_json": tokenizer_json,
    }


def _eval_loss(path):
    try:
        with open(os.path.join(path, "manifest.json"), "r", encoding="utf-8") as f:
            loss = json.load(f).get("eval_loss")
        return loss if isinstance(loss, (int, float)) else None
    except (OSError, ValueError, AttributeError):
        return None


def prune_checkpoints(run_dir, keep):
    """checkpoint.ts pruneCheckpoints: keep the newest `keep` complete ones plus the best eval loss;
    remove the rest and temp folders left by killed writers. Returns the steps removed."""
    root = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    for name in os.listdir(root):
        if name.startswith(".tmp-") and not name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    complete = [(s, p) for s, p in list_checkpoints(run_dir) if os.path.exists(os.path.join(p, "DONE"))]
    best = None
    for step, path in complete:
        loss = _eval_loss(path)
        if loss is not None and (best is None or loss < best[1]):
            best = (step, loss)
    keep_steps = {s for s, _ in complete[-keep:]}
    if best is not None:
        keep_steps.add(best[0])
    removed = []
    for step, path in complete:
        if step not in keep_steps:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(step)
    return removed
