#!/usr/bin/python3
"""Runs a golden case (test/golden/<case>.json) through the PyTorch engine's own code
(src/engines/torch: init from the seed, the trainer's Stepper, torch AdamW) and prints JSON:
the sha256 of its initial weights and the loss and pre-clip grad norm at every step, for
test/integration/torch-golden.test.ts to hold against the reference's numbers.

    torch-engine.py FIXTURE.json
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # nothing written into src/engines/torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "engines", "torch"))

import torch  # noqa: E402

from ckpt import encode_tensors, sha256  # noqa: E402
from model import SteelLM  # noqa: E402
from optim import make_adamw  # noqa: E402
from train import Stepper  # noqa: E402


def main(path):
    torch.set_num_threads(1)
    with open(path, "r", encoding="utf-8") as f:
        fixture = json.load(f)
    cfg = fixture["config"]
    model = SteelLM.init(cfg, fixture["init_seed"])
    _, weights_bin = encode_tensors(dict(model.named_parameters()))
    optimizer = make_adamw(model.named_parameters(), cfg)
    stepper = Stepper(model, model, optimizer, cfg, torch.device("cpu"), "fp32")
    x = torch.tensor(fixture["x"], dtype=torch.int64)
    y = torch.tensor(fixture["y"], dtype=torch.int64)
    steps = []
    for step in range(fixture["adamw_steps"]):
        loss, norm, lr, applied, _ = stepper.step(step, [(x, y)])
        steps.append({"step": step, "loss": loss, "grad_norm": norm, "lr": lr, "applied": applied})
    loss = model(x, y)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(list(model.parameters()), float("inf"))
    steps.append({"step": len(steps), "loss": loss.item(), "grad_norm": norm.item(), "lr": None})
    print(json.dumps({"torch_version": torch.__version__, "weights_sha256": sha256(weights_bin), "steps": steps}))


if __name__ == "__main__":
    main(sys.argv[1])
