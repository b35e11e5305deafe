// The batch script of a run on a Slurm cluster: readable (a user may read it in the run folder, or
// submit it again by hand), every shell value quoted by the one quoting home (../ssh/quote.ts).
// #SBATCH lines are read by sbatch, not by a shell, and take no shell quoting: what goes there is
// checked to be a plain Slurm name, number or time instead, and the output path (any characters)
// goes on sbatch's command line, quoted (sbatchCommand). Pure: test/unit/slurm.test.ts.
import { REQUEUE_EXIT_CODE } from '../../shared/run';
import { shCommand, shQuote } from '../ssh/quote';

/** What Start Training asks for a Slurm host (remembered per host). */
export interface SlurmJobOptions {
  partition: string;
  nodes: number;
  /** GPUs per node; 0 on a CPU-only partition (the bundled engine as one task). */
  gpusPerNode: number;
  /** Slurm's time format: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]; '' for the partition's default. */
  timeLimit: string;
  account?: string;
  qos?: string;
  /** Seconds before the time limit the batch shell gets USR1 (checkpoint, then requeue). Default 120. */
  signalLeadS?: number;
  /**
   * The TCP port of torchrun's rendezvous on the first node of a multi-node job (reachable from
   * the others). Default 29500 + job id mod 1000, so two jobs sharing a node rarely meet.
   */
  rdzvPort?: number;
}

export interface BatchScriptInput {
  job: SlurmJobOptions;
  jobName: string;
  /** The run folder (absolute, on the shared filesystem). */
  runDir: string;
  /** The CLI as a command line prefix: [env K=V…] node cli.js. */
  cli: readonly string[];
  /** What this job runs first (`train …`, or `resume …` with the user's choices). */
  firstArgs: readonly string[];
  /** What it runs when requeued: `resume …` from the newest checkpoint. */
  continueArgs: readonly string[];
}

const NAME = /^[A-Za-z0-9_.+-]{1,64}$/;
const TIME = /^(\d+|\d+:\d{1,2}(:\d{1,2})?|\d+-\d{1,2}(:\d{1,2}){0,2})$/;

/** The options, checked: one line saying what is wrong and what Slurm wants instead. */
export function checkJobOptions(job: SlurmJobOptions): void {
  const name = (what: string, value: string | undefined) => {
    if (value !== undefined && value !== '' && !NAME.test(value)) {
      throw new Error(`${what} ${JSON.stringify(value)} is not a Slurm name (letters, digits, _ . + -).`);
    }
  };
  name('Partition', job.partition);
  name('Account', job.account);
  name('QoS', job.qos);
  if (!job.partition) throw new Error('Choose a partition.');
  if (!Number.isInteger(job.nodes) || job.nodes < 1)
    throw new Error(`Nodes must be a whole number from 1, got ${job.nodes}.`);
  if (!Number.isInteger(job.gpusPerNode) || job.gpusPerNode < 0) {
    throw new Error(`GPUs per node must be a whole number from 0, got ${job.gpusPerNode}.`);
  }
  if (job.rdzvPort !== undefined && !(Number.isInteger(job.rdzvPort) && job.rdzvPort > 0 && job.rdzvPort < 65536))
    throw new Error(`Rendezvous port must be a TCP port (1…65535), got ${job.rdzvPort}.`);
  if (job.timeLimit && !TIME.test(job.timeLimit)) {
    throw new Error(`Time limit ${JSON.stringify(job.timeLimit)}: use minutes, HH:MM:SS or D-HH:MM:SS.`);
  }
}

/** A job name sbatch takes on an #SBATCH line: the run folder's name in plain characters. */
export function jobNameOf(runFolderName: string): string {
  return runFolderName.replace(/[^A-Za-z0-9_.+-]+/g, '-').slice(0, 64) || 'steelscope';
}

/** The shell line that submits `scriptPath` from `cwd`, its output appended to `log`; held until released. */
export function sbatchCommand(cwd: string, scriptPath: string, log: string, opts: { hold?: boolean } = {}): string {
  const hold = opts.hold ? ' --hold' : '';
  return `cd ${shQuote(cwd)} && sbatch --parsable${hold} --open-mode=append --output=${shQuote(log)} ${shQuote(scriptPath)}`;
}

/** The #SBATCH options (without the prefix); every value checked plain by checkJobOptions. */
export function sbatchOptions(input: BatchScriptInput): string[] {
  const { job } = input;
  const lead = job.signalLeadS ?? 120;
  const options = [
    `--job-name=${jobNameOf(input.jobName)}`,
    `--partition=${job.partition}`,
    `--nodes=${job.nodes}`,
    '--ntasks-per-node=1',
    // The batch shell alone gets USR1 ahead of the limit: it asks the trainer for a checkpoint, then requeues.
    `--signal=B:USR1@${lead}`,
    '--requeue',
  ];
  if (job.gpusPerNode > 0) options.push(`--gpus-per-node=${job.gpusPerNode}`);
  if (job.timeLimit) options.push(`--time=${job.timeLimit}`);
  if (job.account) options.push(`--account=${job.account}`);
  if (job.qos) options.push(`--qos=${job.qos}`);
  return options;
}

function isTorch(args: readonly string[]): boolean {
  const at = args.indexOf('--engine');
  return at >= 0 && args[at + 1] === 'torch';
}

/**
 * Several nodes: srun starts the CLI once per node; each starts torchrun, and they meet in a c10d
 * rendezvous hosted on the allocation's first node (src/cli/torchrun.ts rendezvousFromEnv). Its id
 * changes with each requeue, so a restarted job never meets a store of its previous attempt.
 */
function rendezvousLines(job: SlurmJobOptions): string[] {
  const port = job.rdzvPort !== undefined ? String(job.rdzvPort) : '$((29500 + SLURM_JOB_ID % 1000))';
  return [
    '# Several nodes: torchrun on each meets the others on the first node (c10d rendezvous).',
    `rdzv_port=${port}`,
    'export STEELSCOPE_NNODES="$SLURM_NNODES"',
    'export STEELSCOPE_RDZV_ENDPOINT="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):$rdzv_port"',
    'export STEELSCOPE_RDZV_ID="$SLURM_JOB_ID-${SLURM_RESTART_COUNT:-0}"',
  ];
}

/**
 * The script. The trainer is the batch shell's child (one node), or srun's tasks (one per node) on
 * several nodes. Stop's `scancel --signal=TERM --full` reaches the trainer itself, so the shell
 * only notes TERM rather than sending a second one (a second TERM makes a trainer exit without its
 * checkpoint); once the trainer has saved its checkpoint and exited, the job cancels itself, so
 * Slurm says CANCELLED as for any cancelled job. USR1 (the time limit is near, or preemption with a grace time) is passed on as TERM;
 * once the trainer has saved its checkpoint and exited, the job requeues itself, and the requeued
 * script finds run.json and resumes from the newest checkpoint: no step lost or repeated.
 */
export function batchScript(input: BatchScriptInput): string {
  checkJobOptions(input.job);
  const multiNode = input.job.nodes > 1;
  if (multiNode && !isTorch(input.firstArgs))
    throw new Error('A job on several nodes runs the PyTorch engine (torchrun); choose it, or ask for 1 node.');
  const launch = multiNode ? 'srun --kill-on-bad-exit=1 --ntasks-per-node=1 ' : '';
  return [
    '#!/bin/bash',
    '# steelscope: a training run on Slurm, written by the Runs view (submitted with sbatch --output=LOG).',
    `# Run folder: ${shQuote(input.runDir)}`,
    ...sbatchOptions(input).map((o) => `#SBATCH ${o}`),
    '',
    `run_dir=${shQuote(input.runDir)}`,
    `cli=(${shCommand(input.cli)})`,
    `first_args=(${shCommand(input.firstArgs)})`,
    `continue_args=(${shCommand(input.continueArgs)})`,
    '',
    '# Requeued (time limit, preemption) once the trainer saved a checkpoint: continue from the newest one.',
    '# Requeued before that (its trainer never ran, or stopped before its first checkpoint): start as asked.',
    'args=("${first_args[@]}")',
    'if [ "${SLURM_RESTART_COUNT:-0}" != 0 ] && ls -d -- "$run_dir"/checkpoints/step-*/DONE >/dev/null 2>&1; then',
    '  args=("${continue_args[@]}")',
    'fi',
    ...(multiNode ? rendezvousLines(input.job) : []),
    'echo "steelscope: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST (restart ${SLURM_RESTART_COUNT:-0}): ${args[0]}"',
    '',
    'requeue=0 stopping=0',
    "trap 'stopping=1' TERM",
    'trap \'echo "steelscope: time limit near: checkpoint, then requeue"; requeue=1; kill -TERM "$trainer" 2>/dev/null\' USR1',
    `${launch}"\${cli[@]}" "\${args[@]}" &`,
    'trainer=$!',
    '# wait returns early when a trapped signal arrives: wait again until the trainer has exited.',
    'while wait "$trainer"; status=$?; kill -0 "$trainer" 2>/dev/null; do :; done',
    '# The job goes back to the queue: run.json says pending again (the one place that says so), so the',
    '# Runs view shows the run queued, not stopped, until the requeued job resumes it (until then the',
    "# trainer's stopped shows as stopping, this job being alive). A run that ended (finished, failed)",
    '# is not continued.',
    'requeued() { "${cli[@]}" slurm-requeue "$run_dir"; }',
    `# ${REQUEUE_EXIT_CODE}: the trainer checkpointed on USR1 itself (srun passed the time-limit signal to it).`,
    `if [ "$requeue" = 1 ] || [ "$status" = ${REQUEUE_EXIT_CODE} ]; then`,
    '  if requeued; then',
    '    scontrol requeue "$SLURM_JOB_ID" && exit 0',
    '    # Not requeued after all: the job ends here, so the run is stopped again, never left pending.',
    '    echo "steelscope: job $SLURM_JOB_ID could not be requeued; the run stays stopped (Resume continues it)"',
    '    "${cli[@]}" slurm-requeue --failed "$run_dir"',
    '  fi',
    'elif [ "$stopping" = 1 ]; then',
    '  # Stop (scancel --signal=TERM) leaves the job RUNNING. Slurm requeueing it (scontrol requeue, a',
    '  # preemption) counts the restart at once, while the job shows COMPLETING as after a plain scancel:',
    "  # Restarts above this run's SLURM_RESTART_COUNT says requeued (or a state that says so outright).",
    '  job=$(scontrol show job -o "$SLURM_JOB_ID")',
    '  restarts=$(grep -o " Restarts=[0-9]*" <<<"$job" | cut -d= -f2)',
    '  if grep -q "JobState=RUNNING " <<<"$job"; then',
    '    echo "steelscope: stopped (the trainer saved a checkpoint); cancelling job $SLURM_JOB_ID"',
    '    scancel "$SLURM_JOB_ID"',
    '  elif [ "${restarts:-0}" -gt "${SLURM_RESTART_COUNT:-0}" ] ||',
    '    grep -Eq "JobState=(REQUEUED|REQUEUE_FED|REQUEUE_HOLD|PENDING) " <<<"$job" ||',
    '    { grep -q "JobState=PREEMPTED " <<<"$job" && grep -q " Requeue=1 " <<<"$job"; }; then',
    '    requeued',
    '  fi',
    'fi',
    'exit "$status"',
    '',
  ].join('\n');
}
