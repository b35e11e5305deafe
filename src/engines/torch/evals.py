"""The config's eval_tasks at a checkpoint: src/core/eval/run.ts on PyTorch.

The prompts are not built here: `steelscope prepare` (and a resume) renders every task to token ids
in data/evals.json (src/core/eval/render.ts), so the templates and the encoder have one home. This
module only scores them, as score.ts does (the sum of each continuation's log-probabilities after
its context, the window cut from the left to seq_len + 1 tokens; one forward pass for one-token
choices), and turns the scores into the records run.ts writes (mc_records mirrors mcRecords,
mean_stderr meanStderr, macro_average src/shared/eval.ts macroAverage). Scored in float32, without
the training autocast, so a checkpoint scores the same here as in `steelscope eval` (within 1e-4).
"""
import json
import math
import os

import torch

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
def score_rows(model, rows, device):
    """Per row, per group, the summed log-probability of its (position, target) pairs. Rows are
    right-padded into batches: causal attention keeps padding out of every scored position."""
    out = []
    for lo in range(0, len(rows), ROWS_PER_BATCH):
        batch = rows[lo: lo + ROWS_PER_BATCH]
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
        out.extend(sums)
    return out


def choice_log_likelihoods(model, questions, seq_len, device):
    """Each question's per-choice log-likelihoods (score.ts choiceLogLikelihoods over a task)."""
    per_question = [question_rows(q, seq_len) for q in questions]
    scored = score_rows(model, [row for rows in per_question for row in rows], device)
    out, at = [], 0
    for rows in per_question:
        out.append([x for sums in scored[at: at + len(rows)] for x in sums])
        at += len(rows)
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


def mc_scores(model, task, seq_len, device):
    return [choice_log_likelihoods(model, s["questions"], seq_len, device) for s in task["subjects"]]


@torch.no_grad()
def ppl_record(model, task, seq_len, device, step):
    """score.ts streamLoss: non-overlapping windows of seq_len + 1 ids; ppl = exp(mean loss)."""
    ids = task["ids"]
    total, tokens = 0.0, 0
    for w in range(max(0, math.ceil((len(ids) - 1) / seq_len))):
        window = ids[w * seq_len: w * seq_len + seq_len + 1]
        idx = torch.tensor([window[:-1]], dtype=torch.long, device=device)
        logp = torch.log_softmax(model.logits(model.hidden(idx).float()).float()[0], dim=-1)
        targets = torch.tensor(window[1:], dtype=torch.long, device=device)
        total -= logp[torch.arange(len(window) - 1, device=device), targets].double().sum().item()
        tokens += len(window) - 1
    ppl = math.exp(total / tokens) if tokens else float("nan")
    return [{"step": step, "t": now_ms(), "task": task["task"], "subject": MACRO_SUBJECT, "n": tokens, "ppl": ppl}]


def evaluate_tasks(model, tasks, seq_len, device, step):
    """Every task's records at `step`, in order (what trainer.ts runEvalTasks appends)."""
    was_training = model.training
    model.eval()
    try:
        records = []
        for task in tasks:
            if task["kind"] == "ppl":
                records.append(ppl_record(model, task, seq_len, device, step))
            else:
                records.append(mc_records(task, mc_scores(model, task, seq_len, device), step))
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
    (the test that holds this engine to `steelscope eval`'s numbers on the same checkpoint)."""
    import argparse

    from ckpt import load_checkpoint
    from model import SteelLM

    ap = argparse.ArgumentParser(prog="evals.py")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--evals", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--step", type=int, default=0)
    args = ap.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ckpt["manifest"]["config"]
    model = SteelLM.from_weights(cfg, ckpt["weights"])
    model.eval()
    with open(args.evals, "r", encoding="utf-8") as f:
        tasks = json.load(f)["tasks"]
    device = torch.device("cpu")
    scores = [mc_scores(model, t, cfg["seq_len"], device) if t["kind"] == "mc" else None for t in tasks]
    records = evaluate_tasks(model, tasks, cfg["seq_len"], device, args.step)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"scores": scores, "records": records}, f)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
