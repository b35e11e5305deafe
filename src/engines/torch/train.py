"""The training loop: src/core/train/trainer.ts on PyTorch, on one process or under torchrun (DDP).

Step s names the state after s optimizer updates: at step s we evaluate, sample and checkpoint
that state, then run update s on the next global batch and log its loss as the train record of
step s. Every rank walks the same seeded loader and takes its slice of the rows of every
micro-batch, so the global batch, the loss and the update do not depend on the world size.
Every rank scores its share of the config's eval_tasks (evals.py); rank 0 alone computes the eval
loss, samples and writes the run folder, the others waiting at the next collective. Logged loss is
the mean over ranks; the gradient norm is of the all-reduced gradient.
"""
import contextlib
import math
import time

import torch
import torch.distributed as dist

from ckpt import save_checkpoint
from evals import describe, evaluate_tasks
from model import flops_per_token
from optim import adamw_state, adamw_step_count, learning_rate, set_lr
from sample import write_samples

# Dense bf16/fp16 tensor-core peaks (FLOP/s) by a substring of torch.cuda.get_device_name, for MFU.
PEAK_FLOPS = [
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("GH200", 989e12), ("A100", 312e12),
    ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12), ("A6000", 155e12),
    ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("V100", 125e12), ("T4", 65e12),
]


def peak_flops(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_FLOPS if key in name), None)


class SpikeDetector:
    """spike.ts: a finite loss more than `sigmas` std above the mean of the recent window."""

    WINDOW, MIN_SAMPLES = 100, 20

    def __init__(self, sigmas):
        self.sigmas = sigmas
        self.recent = []

    def observe(self, loss):
        if not math.isfinite(loss):
            return None
        result = None
        if self.sigmas > 0 and len(self.recent) >= self.MIN_SAMPLES:
            mean = sum(self.recent) / len(self.recent)
            std = math.sqrt(sum((v - mean) ** 2 for v in self.recent) / len(self.recent))
            z = (loss - mean) / max(std, 1e-3 * abs(mean), 1e-6)
            if z > self.sigmas:
                result = {"mean": mean, "std": std, "sigmas": z}
        self.recent.append(loss)
        if len(self.recent) > self.WINDOW:
            self.recent.pop(0)
        return result


class Stepper:
    """One optimizer update from the micro-batches of a global batch: forward and backward under
    the device's precision, global pre-clip norm, clipping, NaN/Inf skip, AdamW.
    `model` is the plain module, `ddp` its DDP wrapper (or itself on one process), `forward` what
    computes the loss (ddp, or ddp through torch.compile)."""

    def __init__(self, model, ddp, optimizer, cfg, device, precision, rank=0, world=1, forward=None):
        self.model, self.ddp, self.optimizer, self.cfg = model, ddp, optimizer, cfg
        self.forward = forward or ddp
        self.device, self.precision, self.rank, self.world = device, precision, rank, world
        self.params = [p for _, p in model.named_parameters()]
        self.scaler = torch.cuda.amp.GradScaler() if precision == "fp16" else None

    def autocast(self):
        if self.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(device_type=self.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def rows(self, batch):
        """This rank's slice of a micro-batch's rows, as the loss's arguments: (x, y), and with a mask
        (fine-tuning) the mask and the whole micro-batch's mask total over the world size, so that DDP's
        mean of the ranks' gradients is the gradient of the batch's masked mean whatever the world size."""
        per = batch[0].shape[0] // self.world
        lo = self.rank * per
        args = [t[lo: lo + per].to(self.device, non_blocking=True) for t in batch]
        if len(batch) == 3:
            total = torch.clamp(batch[2].sum(), min=1.0) / self.world
            args.append(total.to(self.device))
        return args

    def step(self, step, micro_batches, stop_local=False):
        """Returns (global loss, pre-clip grad norm, lr, applied, stop requested on any rank)."""
        accum = len(micro_batches)
        loss_sum = torch.zeros((), device=self.device)
        for i, batch in enumerate(micro_batches):
            args = self.rows(batch)
            last = i == accum - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    loss = self.forward(*args) / accum
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum += loss.detach().float()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        clip = self.cfg["grad_clip"] if self.cfg["grad_clip"] > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        packed = torch.stack([loss_sum, torch.tensor(1.0 if stop_local else 0.0, device=self.device)])
        if self.world > 1:
            dist.all_reduce(packed)  # one collective per step: the loss sum and anyone's stop request
        loss_value = packed[0].item() / self.world
        stop = packed[1].item() > 0
        grad_norm = float(norm.item())
        lr = learning_rate(step, self.cfg)
        applied = math.isfinite(loss_value) and math.isfinite(grad_norm)
        if applied:
            set_lr(self.optimizer, lr)
            if self.scaler:
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
        if self.scaler:
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_value, grad_norm, lr, applied, stop


class Session:
    """What the loop needs (trainer.ts TrainSession); writer and prompts are None off rank 0."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def train_loop(s):
    """trainer.ts trainLoop. Returns 'finished' or 'stopped'."""
    cfg = s.config
    tokens_per_step = cfg["batch_size"] * cfg["seq_len"] * cfg["grad_accum"]
    spikes = SpikeDetector(cfg["spike_sigma"])
    flops = flops_per_token(cfg) * tokens_per_step
    peak = peak_flops(s.device)
    last_eval, last_loss = None, None
    last_checkpoint = s.start_step
    resumed = s.start_step > 0
    stop = False
    step = s.start_step
    while True:
        s.current_step = step
        fresh = not resumed or step > s.start_step  # the checkpointed state's eval/sample were written
        if s.writer is not None:
            if fresh and cfg["eval_every"] > 0 and step % cfg["eval_every"] == 0:
                last_eval = evaluate(s, step)
            if fresh and cfg["sample_every"] > 0 and step % cfg["sample_every"] == 0 and s.prompts:
                with s.stepper.autocast():
                    write_samples(s.model, cfg, step, s.prompts, s.decoder, s.writer, s.device, s.log)
        # The eval tasks are every rank's (each scores a share), so these conditions hold on all ranks alike.
        if fresh and step == 0:
            run_eval_tasks(s, step, stop)
        if step > last_checkpoint and cfg["checkpoint_every"] > 0 and step % cfg["checkpoint_every"] == 0:
            run_eval_tasks(s, step, stop)  # before the checkpoint, so pruning sees this step's scores
            if s.writer is not None:
                checkpoint(s, step, last_eval, last_loss)
            last_checkpoint = step
        if step >= s.target_step or stop:
            break
        started = time.perf_counter()
        if s.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(s.device)
        micro = [s.loader.next_batch(cfg["batch_size"]) for _ in range(cfg["grad_accum"])]
        loss, grad_norm, lr, applied, stop = s.stepper.step(step, micro, s.stop_requested())
        seconds = time.perf_counter() - started
        last_loss = loss
        if s.writer is not None:
            report_step(s, step, loss, grad_norm, lr, applied, seconds, tokens_per_step, flops, peak, spikes)
        step += 1
    if step > last_checkpoint or step == 0:
        if step > 0:
            run_eval_tasks(s, step, stop)
        if s.writer is not None:
            checkpoint(s, step, last_eval, last_loss)
    if s.world > 1:
        dist.barrier()  # every rank stops after rank 0's checkpoint
    return "finished" if step >= s.target_step else "stopped"


def report_step(s, step, loss, grad_norm, lr, applied, seconds, tokens_per_step, flops, peak, spikes):
    cfg, writer = s.config, s.writer
    if not applied:
        message = f"Non-finite loss ({loss}) or gradient norm ({grad_norm}): update skipped."
        writer.event(step, "nan", "warning", message, loss=str(loss), grad_norm=str(grad_norm))
    tok_per_s = tokens_per_step / seconds
    if step % cfg["log_every"] == 0:
        record = {"step": step, "kind": "train", "loss": loss, "lr": lr, "grad_norm": grad_norm,
                  "tokens": (step + 1) * tokens_per_step, "tok_per_s": tok_per_s, "step_ms": seconds * 1000}
        if s.device.type == "cuda":
            record["gpu_mem_gb"] = torch.cuda.max_memory_allocated(s.device) / 1e9
            if peak:
                record["mfu"] = flops / seconds / (peak * s.world)
        writer.metric(record)
    spike = spikes.observe(loss)
    if spike:
        writer.event(step, "spike", "warning",
                     f"Loss {loss:.4f} is {spike['sigmas']:.1f}σ above its recent mean {spike['mean']:.4f}.",
                     loss=loss, mean=spike["mean"], std=spike["std"])
    left = round((s.target_step - step - 1) * seconds)
    eta = f"{left // 60}m{left % 60:02d}s" if left >= 60 else f"{left}s"
    s.log(f"step {step}/{s.target_step} | loss {loss:.4f} | lr {lr:.2e} | grad_norm {grad_norm:.3f} | "
          f"{round(tok_per_s)} tok/s | eta {eta}")


@torch.no_grad()
def evaluate(s, step):
    if not s.eval_set:
        return None
    total = 0.0
    for x, y in s.eval_set:
        with s.stepper.autocast():
            total += s.model(x.to(s.device), y.to(s.device)).item()
    mean = total / len(s.eval_set)
    s.writer.metric({"step": step, "kind": "eval", "loss": mean})
    s.log(f"step {step}: eval loss {mean:.4f}")
    return mean


def run_eval_tasks(s, step, stop):
    """trainer.ts runEvalTasks: the config's eval_tasks (rendered in data/evals.json) on the current
    weights, appended to evals.jsonl at `step`; not on the way out of a stop. Called on every rank at
    the same step: each scores its share, and rank 0 writes the records."""
    if not s.eval_tasks or stop or stop_anywhere(s, s.stop_requested()):
        return
    for records in evaluate_tasks(s.model, s.eval_tasks, s.config["seq_len"], s.device, step, s.rank, s.world):
        if s.writer is not None:
            s.writer.evals(records)
            s.log(f"step {step}: {describe(records)}")


def stop_anywhere(s, stop_local):
    """Whether any rank has a stop request: a signal reaches each rank on its own, and the stop file
    only rank 0, so the ranks agree before they either all score the tasks or all skip them."""
    if s.world == 1:
        return stop_local
    flag = torch.tensor(1.0 if stop_local else 0.0, device=s.device)
    dist.all_reduce(flag)
    return flag.item() > 0


def checkpoint(s, step, eval_loss, train_loss):
    cfg = s.config
    named = list(s.model.named_parameters())
    path = save_checkpoint(s.writer.dir, {
        "run_id": s.writer.info["id"],
        "step": step,
        "tokens": step * cfg["batch_size"] * cfg["seq_len"] * cfg["grad_accum"],
        "config": cfg,
        "data": {"cursor": s.loader.cursor(), "files": s.data_files},
        "rng": s.rng_state,
        "optimizer": {"step": adamw_step_count(s.optimizer)},
        "eval_loss": eval_loss if eval_loss is not None and math.isfinite(eval_loss) else None,
        "train_loss": train_loss if train_loss is not None and math.isfinite(train_loss) else None,
        "weights": {name: p for name, p in named},
        "optimizer_state": adamw_state(s.optimizer, named),
        "tokenizer_json": s.tokenizer_json,
    })
    # Pruning (keep_checkpoints and the best) is the supervisor's, by the shared rule: src/cli/torchrun.ts.
    s.writer.event(step, "checkpoint", "info", f"Checkpoint saved at step {step}.", path=path)
    s.writer.update(step=step)
    s.log(f"step {step}: checkpoint {path}")
