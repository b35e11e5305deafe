#!/usr/bin/python3
"""The trainer's run_eval_tasks under torchrun (CPU, gloo) when only rank 0 has a stop request (the
supervisor's stop file reaches rank 0 alone), then when no rank has one. The ranks must agree, skip
together and then score together, or they would meet in mismatched collectives. Each rank writes
OUT/rank-N.json: the steps at which it scored the tasks, and on rank 0 the steps of the records it
wrote (for test/integration/torch-evals.test.ts).

    torchrun --nproc_per_node 2 torch-evals-stop.py CHECKPOINT EVALS_JSON OUT
"""
import datetime
import json
import os
import sys

sys.dont_write_bytecode = True  # nothing written into src/engines/torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "engines", "torch"))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import train  # noqa: E402
from ckpt import load_checkpoint  # noqa: E402
from model import SteelLM  # noqa: E402


class Writer:
    def __init__(self):
        self.steps = []

    def evals(self, records):
        self.steps += [r["step"] for r in records]


def main(checkpoint, evals_path, out):
    # A short timeout: ranks that disagree fail in bounded time instead of hanging the test.
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank, world = dist.get_rank(), dist.get_world_size()
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["manifest"]["config"]
    with open(evals_path, "r", encoding="utf-8") as f:
        tasks = json.load(f)["tasks"]
    scored_at = []
    evaluate_tasks = train.evaluate_tasks

    def counted(model, tasks, seq_len, device, step, *shard):
        scored_at.append(step)
        return evaluate_tasks(model, tasks, seq_len, device, step, *shard)

    train.evaluate_tasks = counted
    asked = {"stop": rank == 0}
    s = train.Session(config=cfg, model=SteelLM.from_weights(cfg, ckpt["weights"]), device=torch.device("cpu"),
                      rank=rank, world=world, writer=Writer() if rank == 0 else None, eval_tasks=tasks,
                      log=lambda line: None, stop_requested=lambda: asked["stop"])
    train.run_eval_tasks(s, 1, False)  # rank 0 alone asked to stop
    asked["stop"] = False
    train.run_eval_tasks(s, 2, False)  # no rank asked
    with open(os.path.join(out, f"rank-{rank}.json"), "w", encoding="utf-8") as f:
        json.dump({"scored_at": scored_at, "written": s.writer.steps if s.writer else None}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
