"""The config's eval_tasks at a checkpoint: src/core/eval/run.ts on PyTorch.

The prompts are not built here: `steelscope prepare` (and a resume) renders every task to token ids
in data/evals.json (src/core/eval/render.ts), so the templates and the encoder have one home. This
module only scores them, as score.ts does (the sum of each continuation's log-probabilities after
its context, the window cut from the left to seq_len + 1 tokens; one forward pass for one-token
choices), and turns the scores into the records run.ts writes (mc_records mirrors mcRecords,
mean_stderr meanStderr, macro_average src/shared/eval.ts macroAverage). Scored in float32, without
the training autocast, so a checkpoint scores the same here as in `steelscope eval` (within 1e-4).

Under torchrun every rank scores a share (mc_scores: every world-th batch of rows; ppl_record: every
world-th window) and one all-reduce per task brings the numbers to every rank, identical to what one
process computes; rank 0 writes the records. A C-Eval-sized task so takes 1/world of the time, where
rank 0 alone would keep the other ranks waiting on the process group's timeout.
"""
import json
import math
import os

import torch
import torch.distributed as dist

from rundir import now_ms

MACRO_SUBJECT = "_average"
EVALS_FORMAT = "steelscope.evals/1"
ROWS_PER_BATCH = 16


def read_eval_tasks(run_dir):
    """The rendered tasks of data/evals.json; [] when the run has none (prepared before it existed)."""
    path = os.path.join(run_dir, "data", "evals.json")
    if not os.path.exists(path):
        return []
    with open(path, "r", encoding="utf-8") as f:
        rendered = json.load(f)
    if rendered.get("format") != EVALS_FORMAT:
        raise ValueError(f"{path} is not {EVALS_FORMAT}; run `steelscope prepare` again.")
    return rendered["tasks"]


def question_rows(question, seq_len):
    """The (input ids, [(position, target id)...] per choice) rows that score one question's choices."""
    context, choices = question["context"], question["choices"]
    if context and all(len(c) == 1 for c in choices):
        window = context[-seq_len:]  # one pass: every choice is the next token after the context
        return [(window, [[(len(window) - 1, c[0])] for c in choices])]
    rows = []
    for c in choices:
        window = (context + c)[-(seq_len + 1):]
        first = len(window) - len(c)  # index in window of the first continuation token
        rows.append((window[:-1], [[(j - 1, window[j]) for j in range(first, len(window))]]))
    return rows


@torch.no_grad()
def score_batch(model, batch, device):
    """Per row, per group, the summed log-probability of its (position, target) pairs. The rows are
    right-padded into one batch: causal attention keeps padding out of every scored position."""
    width = max(len(ids) for ids, _ in batch)
    idx = torch.zeros((len(batch), width), dtype=torch.long)
    for r, (ids, _) in enumerate(batch):
        idx[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    hidden = model.hidden(idx.to(device)).float()  # [B, T, d]
    pairs = [(r, g, p, t) for r, (_, groups) in enumerate(batch) for g, group in enumerate(groups) for p, t in group]
    rows_i = torch.tensor([p[0] for p in pairs], device=device)
    pos_i = torch.tensor([p[2] for p in pairs], device=device)
    logp = torch.log_softmax(model.logits(hidden[rows_i, pos_i]).float(), dim=-1)  # [N, V]
    picked = logp[torch.arange(len(pairs), device=device), torch.tensor([p[3] for p in pairs], device=device)]
    sums = [[0.0] * len(groups) for _, groups in batch]
    for (r, g, _, _), value in zip(pairs, picked.double().cpu().tolist()):
        sums[r][g] += value
    return sums


def sum_over_ranks(values, world):
    """`values` (floats) summed over the ranks, on every rank. Each rank fills only its own slots and
    leaves the others 0.0, so the sum is every rank's numbers exactly (x + 0.0 == x), in float64, on the
    device the process group's backend reduces on (NCCL: this rank's GPU; gloo: the CPU)."""
    if world == 1 or not values:  # the same length on every rank, so all of them return here alike
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    packed = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    return packed.cpu().tolist()


def mc_scores(model, task, seq_len, device, rank=0, world=1):
    """Per subject, per question, the per-choice log-likelihoods (run.ts scoreRendered). Each subject's
    rows are cut into batches of ROWS_PER_BATCH as on one process, and under torchrun rank r scores
    the task's batches r, r + world, r + 2·world…, so every batch, hence every number, is the one a
    single process computes, whatever the world size (a rank may get one batch fewer, or none)."""
    per_question = [[question_rows(q, seq_len) for q in s["questions"]] for s in task["subjects"]]
    batches = []
    for questions in per_question:
        rows = [row for q_rows in questions for row in q_rows]
        batches += [rows[lo: lo + ROWS_PER_BATCH] for lo in range(0, len(rows), ROWS_PER_BATCH)]
    # Each batch's slots in one flat list: its rows' groups (choices), in order.
    starts = [0]
    for batch in batches:
        starts.append(starts[-1] + sum(len(groups) for _, groups in batch))
    flat = [0.0] * starts[-1]
    for b in range(rank, len(batches), world):
        flat[starts[b]: starts[b + 1]] = [x for sums in score_batch(model, batches[b], device) for x in sums]
    flat = sum_over_ranks(flat, world)
    out, at = [], 0
    for questions in per_question:
        subject = []
        for q_rows in questions:
            width = sum(len(groups) for _, groups in q_rows)
            subject.append(flat[at: at + width])
            at += width
        out.append(subject)
    return out


def argmax(values):
    """The first index of the largest value (score.ts argmaxIndex)."""
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best]:
            best = i
    return best


def mean_stderr(outcomes):
    n = len(outcomes)
    if n < 2:
        return None
    mean = sum(outcomes) / n
    return math.sqrt(sum((x - mean) ** 2 for x in outcomes) / (n - 1) / n)


def accuracy(outcomes, key):
    record = {key: sum(outcomes) / len(outcomes)}
    stderr = mean_stderr(outcomes)
    if stderr is not None:
        record["stderr" if key == "acc" else "acc_norm_stderr"] = stderr
    return record


def mean_over(values, stderrs):
    mean = sum(values) / len(values)
    if any(s is None for s in stderrs):
        return mean, None
    return mean, math.sqrt(sum(s * s for s in stderrs)) / len(stderrs)


def macro_average(subjects):
    out = {"n": sum(s["n"] for s in subjects)}
    for key, err in (("acc", "stderr"), ("acc_norm", "acc_norm_stderr")):
        if all(key in s for s in subjects):
            mean, stderr = mean_over([s[key] for s in subjects], [s.get(err) for s in subjects])
            out[key] = mean
            if stderr is not None:
                out[err] = stderr
    return out


def mc_records(task, scores, step):
    common = {"step": step, "task": task["task"], "shots": task["shots"], "format": task["choices"]}
    records = []
    for subject, subject_scores in zip(task["subjects"], scores):
        qs = subject["questions"]
        correct = [1 if argmax(s) == q["answer"] else 0 for q, s in zip(qs, subject_scores)]
        normed = [1 if argmax([ll / n for ll, n in zip(s, q["lengths"])]) == q["answer"] else 0
                  for q, s in zip(qs, subject_scores)]
        records.append({**common, "t": now_ms(), "subject": subject["name"], "n": len(correct),
                        **accuracy(correct, "acc"), **accuracy(normed, "acc_norm")})
    return records + [{**common, "t": now_ms(), "subject": MACRO_SUBJECT, **macro_average(records)}]


@torch.no_grad()
def ppl_record(model, task, seq_len, device, step, rank=0, world=1):
    """score.ts streamLoss: non-overlapping windows of seq_len + 1 ids; ppl = exp(mean loss). Under
    torchrun rank r scores windows r, r + world…; the windows' sums are added up in order on every
    rank, so the total is a single process's to the last bit."""
    ids = task["ids"]
    windows = max(0, math.ceil((len(ids) - 1) / seq_len))
    sums = [0.0] * windows
    for w in range(rank, windows, world):
        window = ids[w * seq_len: w * seq_len + seq_len + 1]
        idx = torch.tensor([window[:-1]], dtype=torch.long, device=device)
        logp = torch.log_softmax(model.logits(model.hidden(idx).float()).float()[0], dim=-1)
        targets = torch.tensor(window[1:], dtype=torch.long, device=device)
        sums[w] = logp[torch.arange(len(window) - 1, device=device), targets].double().sum().item()
    total = 0.0
    for value in sum_over_ranks(sums, world):
        total -= value
    tokens = max(0, len(ids) - 1)  # every id after the first is a target of exactly one window
    ppl = math.exp(total / tokens) if tokens else float("nan")
    return [{"step": step, "t": now_ms(), "task": task["task"], "subject": MACRO_SUBJECT, "n": tokens, "ppl": ppl}]


def evaluate_tasks(model, tasks, seq_len, device, step, rank=0, world=1):
    """Every task's records at `step`, in order (what trainer.ts runEvalTasks appends). Under torchrun
    every rank calls it at the same point: each scores its share of every task (mc_scores, ppl_record)
    and every rank returns the same records (rank 0 writes them)."""
    was_training = model.training
    model.eval()
    try:
        records = []
        for task in tasks:
            if task["kind"] == "ppl":
                records.append(ppl_record(model, task, seq_len, device, step, rank, world))
            else:
                records.append(mc_records(task, mc_scores(model, task, seq_len, device, rank, world), step))
        return records
    finally:
        model.train(was_training)


def describe(records):
    """trainer.ts's log line of a task's macro average."""
    macro = next((r for r in records if r["subject"] == MACRO_SUBJECT), {})
    parts = [macro.get("task", "?")]
    for name, err in (("acc", "stderr"), ("acc_norm", "acc_norm_stderr"), ("ppl", None)):
        if name in macro:
            se = f" ± {macro[err]:.4f}" if err and err in macro else ""
            parts.append(f"{name} {macro[name]:.4f}{se}")
    return " ".join(parts)


def main(argv):
    """python evals.py --checkpoint DIR --evals data/evals.json --out OUT.json [--step N]: the rendered
    tasks scored on a checkpoint, {"scores": per task the per-choice log-likelihoods, "records": …}
    (the test that holds this engine to `steelscope eval`'s numbers on the same checkpoint). On the CPU;
    under torchrun (gloo) the ranks share the scoring as in training, and rank 0 writes OUT."""
    import argparse

    from ckpt import load_checkpoint
    from model import SteelLM

    ap = argparse.ArgumentParser(prog="evals.py")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--evals", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--step", type=int, default=0)
    args = ap.parse_args(argv)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt["manifest"]["config"]
    model = SteelLM.from_weights(cfg, ckpt["weights"])
    model.eval()
    with open(args.evals, "r", encoding="utf-8") as f:
        tasks = json.load(f)["tasks"]
    device, seq_len = torch.device("cpu"), cfg["seq_len"]
    scores = [mc_scores(model, t, seq_len, device, rank, world) if t["kind"] == "mc" else None for t in tasks]
    records = evaluate_tasks(model, tasks, seq_len, device, args.step, rank, world)
    if rank == 0:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"scores": scores, "records": records}, f)
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
