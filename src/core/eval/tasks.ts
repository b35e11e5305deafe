// Multiple-choice evaluation tasks read from CSV: the C-Eval layout
// (`id,question,A,B,C,D,answer[,explanation]`, folders dev/ val/ test/ holding `<subject>_<split>.csv`)
// and the CMMLU layout (`,Question,A,B,C,D,Answer`, folders dev/ test/ holding `<subject>.csv`).
// Questions are scored from `val` when a subject has one (C-Eval's test split has no answers),
// else from `test`; k-shot examples come from the same subject's `dev` split.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { EvalFormat } from '../../shared/eval';
import { CsvError, parseCsv } from './csv';

export const CHOICE_LETTERS = ['A', 'B', 'C', 'D'] as const;

export interface Question {
  question: string;
  choices: [string, string, string, string];
  /** Index into CHOICE_LETTERS; -1 when the row has no answer (C-Eval test). */
  answer: number;
}

export interface Subject {
  name: string;
  questions: Question[];
  /** Few-shot examples (the dev split), in file order. */
  dev: Question[];
}

export interface McTask {
  name: string;
  subjects: Subject[];
}

const SPLITS = ['dev', 'val', 'test'] as const;
type Split = (typeof SPLITS)[number];

/** Reads one task CSV (either layout); throws CsvError naming the file and what is wrong. */
export function readQuestions(path: string): Question[] {
  const rows = parseCsv(readFileSync(path, 'utf8'), path);
  if (rows.length === 0) throw new CsvError(`${path} is empty; a task CSV needs a header row and questions.`);
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const column = (name: string) => header.indexOf(name);
  const cols = { question: column('question'), A: column('a'), B: column('b'), C: column('c'), D: column('d') };
  const answerCol = column('answer');
  const missing = Object.entries(cols)
    .filter(([, i]) => i < 0)
    .map(([k]) => k);
  if (missing.length > 0) {
    throw new CsvError(
      `${path}: header has no ${missing.join(', ')} column; expected C-Eval's id,question,A,B,C,D,answer or CMMLU's ,Question,A,B,C,D,Answer.`,
    );
  }
  return rows
    .slice(1)
    .filter((r) => !(r.length === 1 && r[0].trim() === ''))
    .map((r, i) => {
      const get = (c: number) => (c >= 0 && c < r.length ? r[c] : '');
      const label = get(answerCol).trim().toUpperCase();
      const answer = label === '' ? -1 : CHOICE_LETTERS.indexOf(label as (typeof CHOICE_LETTERS)[number]);
      if (label !== '' && answer < 0)
        throw new CsvError(`${path} row ${i + 2}: answer "${label}" is not one of A, B, C, D.`);
      const choices: Question['choices'] = [get(cols.A), get(cols.B), get(cols.C), get(cols.D)];
      return { question: get(cols.question), choices, answer };
    });
}

/** `accountant_val.csv` → accountant (C-Eval), `agronomy.csv` → agronomy (CMMLU). */
function subjectOf(file: string, split: Split): string {
  const stem = basename(file, '.csv');
  return stem.endsWith(`_${split}`) ? stem.slice(0, -split.length - 1) : stem;
}

function csvFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.csv'))
    .sort();
}

/** A task folder with dev/ and val/ or test/ sub-folders. */
function readTaskFolder(dir: string): McTask {
  const bySplit = new Map<Split, Map<string, string>>();
  for (const split of SPLITS) {
    const sub = join(dir, split);
    if (!existsSync(sub) || !statSync(sub).isDirectory()) continue;
    bySplit.set(split, new Map(csvFiles(sub).map((f) => [subjectOf(f, split), join(sub, f)])));
  }
  const scored = new Map([...(bySplit.get('test') ?? []), ...(bySplit.get('val') ?? [])]);
  if (scored.size === 0) {
    // A flat folder of subject CSVs: each one is scored, no few-shot examples.
    const flat = csvFiles(dir);
    if (flat.length === 0) {
      throw new CsvError(
        `${dir} has no val/ or test/ folder and no .csv files; point --task at a C-Eval or CMMLU copy.`,
      );
    }
    const subjects = flat.map((f) => ({ name: basename(f, '.csv'), questions: readQuestions(join(dir, f)), dev: [] }));
    return { name: basename(dir), subjects };
  }
  const dev = bySplit.get('dev') ?? new Map<string, string>();
  const subjects = [...scored]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, file]) => {
      const devFile = dev.get(name);
      return { name, questions: readQuestions(file), dev: devFile ? readQuestions(devFile) : [] };
    });
  return { name: basename(dir), subjects };
}

/** One CSV: its subject's dev split is looked for beside it (`../dev/<subject>[_dev].csv`). */
function readTaskFile(file: string): McTask {
  const split = SPLITS.find((s) => basename(dirname(file)) === s) ?? 'test';
  const name = subjectOf(file, split);
  const devDir = join(dirname(dirname(file)), 'dev');
  const devFile = [join(devDir, `${name}_dev.csv`), join(devDir, `${name}.csv`)].find(
    (f) => f !== file && existsSync(f),
  );
  return { name, subjects: [{ name, questions: readQuestions(file), dev: devFile ? readQuestions(devFile) : [] }] };
}

export function readMcTask(path: string): McTask {
  if (!existsSync(path))
    throw new CsvError(`Task ${path} does not exist; give a task CSV, a C-Eval/CMMLU folder or poetry-mc.`);
  const task = statSync(path).isDirectory() ? readTaskFolder(path) : readTaskFile(path);
  for (const s of task.subjects) s.questions = s.questions.filter((q) => q.answer >= 0);
  task.subjects = task.subjects.filter((s) => s.questions.length > 0);
  if (task.subjects.length === 0) throw new CsvError(`${path} has no question with an answer (A-D) to score.`);
  return task;
}

/** lm-evaluation-harness's C-Eval/CMMLU rendering of one question, up to and including 答案：. */
export function questionText(q: Question): string {
  const options = q.choices.map((c, i) => `${CHOICE_LETTERS[i]}. ${c}`).join('\n');
  return `${q.question.trim()}\n${options}\n答案：`;
}

/** The harness joins the prompt and a choice with one space (its default target_delimiter). */
export const TARGET_DELIMITER = ' ';

/** The cloze rendering of one question: the question alone, up to and including 答案：. */
export function clozeQuestionText(q: Question): string {
  return `${q.question.trim()}\n答案：`;
}

/** What follows the prompt for each choice: its letter (letters) or its own text (cloze), without the delimiter. */
export function choiceTexts(q: Question, format: EvalFormat): string[] {
  return format === 'cloze' ? [...q.choices] : [...CHOICE_LETTERS];
}

/** k dev examples with their answers, then the question; examples separated by a blank line. */
export function fewShotPrompt(subject: Subject, q: Question, shots: number, format: EvalFormat = 'letters'): string {
  const render = format === 'cloze' ? clozeQuestionText : questionText;
  const examples = subject.dev
    .filter((d) => d.answer >= 0)
    .slice(0, shots)
    .map((d) => `${render(d)}${TARGET_DELIMITER}${choiceTexts(d, format)[d.answer]}`);
  return [...examples, render(q)].join('\n\n');
}

/** What `--task` names: the shipped poetry-mc, perplexity on a text file, or a CSV task. */
export type TaskSpec = { kind: 'mc'; path: string } | { kind: 'ppl'; path: string };

export const SHIPPED_TASKS: Readonly<Record<string, string>> = { 'poetry-mc': 'tasks/poetry-mc' };

/** `poetry-mc`, `ppl:<file>` (or a .txt file), else a task CSV or folder. */
export function parseTaskSpec(spec: string, findBuilt: (rel: string) => string | undefined): TaskSpec {
  const shipped = SHIPPED_TASKS[spec];
  if (shipped !== undefined) {
    const path = findBuilt(shipped);
    if (path === undefined) throw new CsvError(`Task ${spec} is missing from dist/${shipped}; run \`npm run build\`.`);
    return { kind: 'mc', path };
  }
  if (spec.startsWith('ppl:')) return { kind: 'ppl', path: spec.slice(4) };
  if (spec.endsWith('.txt')) return { kind: 'ppl', path: spec };
  return { kind: 'mc', path: spec };
}
