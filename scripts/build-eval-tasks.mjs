// Derives the shipped evaluation task poetry-mc from the MIT-licensed chinese-poetry package, in
// the CMMLU layout (`,Question,A,B,C,D,Answer`; dev/ for few-shot examples, test/ scored), in the
// default corpus's script (traditional). Questions come only from poem files the default corpus
// never reads (held out from training); the poets asked about are the corpus's prolific ones, so
// a model trained on the default corpus has seen each answer's style. Two subjects:
//   author     「first couplet」出自《title》，作者是？ — the poet and three other corpus poets
//   next_line  「couplet」的下一句是？ — the next couplet and three of the same length from other poems
// Deterministic: a fixed seed, files in a fixed order.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { poetrySource, selectCorpus, toDocument } from './build-corpus.mjs';

const PER_SUBJECT = { dev: 5, test: 200 };
const MIN_POEMS_PER_POET = 20; // in the corpus
const LETTERS = ['A', 'B', 'C', 'D'];

/** mulberry32: a small seeded generator, so the task is the same on every build. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle(list, random) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Three distinct distractors from `pool` unlike `answer`, placed with the answer at a random letter. */
function question(text, answer, pool, random) {
  const others = [];
  for (const x of shuffle(pool, random)) {
    if (x !== answer && !others.includes(x)) others.push(x);
    if (others.length === 3) break;
  }
  if (others.length < 3) return null;
  const at = Math.floor(random() * 4);
  const choices = [...others];
  choices.splice(at, 0, answer);
  return [text, ...choices, LETTERS[at]];
}

/**
 * The scored rows with their answers moved so that each letter answers a quarter of them (a seeded
 * shuffle of an even deck; the answer swaps places with the choice at its new letter). With uneven
 * letters a model that always says one letter beats 25%: at first 62 of 200 next_line answers were A.
 */
function balanceLetters(rows, random) {
  const deck = shuffle(
    rows.map((_, i) => i % 4),
    random,
  );
  return rows.map((row, i) => {
    const choices = row.slice(1, 5);
    const from = LETTERS.indexOf(row[5]);
    const to = deck[i];
    [choices[from], choices[to]] = [choices[to], choices[from]];
    return [row[0], ...choices, LETTERS[to]];
  });
}

function csvCell(value) {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function writeCmmlu(file, rows) {
  const lines = [['', 'Question', 'A', 'B', 'C', 'D', 'Answer'], ...rows.map((r, i) => [String(i), ...r])];
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, lines.map((l) => l.map(csvCell).join(',')).join('\n') + '\n');
}

export function buildEvalTasks(outDir) {
  const { lines, filesRead } = selectCorpus();
  const corpusCount = new Map();
  const corpusLines = new Set(); // the package repeats some poems across files: those are not held out
  for (const line of lines) {
    const [, author, ...body] = JSON.parse(line).text.split('\n');
    corpusCount.set(author, (corpusCount.get(author) ?? 0) + 1);
    for (const b of body) corpusLines.add(b);
  }
  const poets = [...corpusCount]
    .filter(([, n]) => n >= MIN_POEMS_PER_POET)
    .map(([a]) => a)
    .sort();
  const known = new Set(poets);
  const { tang, song } = poetrySource();
  const heldOut = [];
  for (const file of [...tang, ...song].filter((f) => !filesRead.has(f))) {
    for (const poem of JSON.parse(readFileSync(file, 'utf8'))) {
      const doc = toDocument(poem);
      const parts = doc ? doc.split('\n') : [];
      if (parts.length >= 4 && known.has(parts[1]) && !parts.slice(2).some((b) => corpusLines.has(b)))
        heldOut.push(parts);
    }
  }
  const random = rng(0x9e3779b9);
  const poems = shuffle(heldOut, random);
  const couplets = poems.flatMap((p) => p.slice(2));
  const byLength = new Map();
  for (const c of couplets) byLength.set(c.length, [...(byLength.get(c.length) ?? []), c]);
  const need = PER_SUBJECT.dev + PER_SUBJECT.test;
  const author = [];
  const nextLine = [];
  for (const [title, poet, ...body] of poems) {
    if (author.length < need) {
      const q = question(`「${body[0]}」出自《${title}》，作者是？`, poet, poets, random);
      if (q) author.push(q);
    } else if (nextLine.length < need) {
      const i = Math.floor(random() * (body.length - 1));
      const q = question(`「${body[i]}」的下一句是？`, body[i + 1], byLength.get(body[i + 1].length) ?? [], random);
      if (q) nextLine.push(q);
    } else break;
  }
  const balance = rng(0x85ebca6b); // its own stream: the questions drawn above stay the same
  for (const [subject, rows] of [
    ['author', author],
    ['next_line', nextLine],
  ]) {
    writeCmmlu(join(outDir, 'dev', `${subject}.csv`), rows.slice(0, PER_SUBJECT.dev));
    writeCmmlu(join(outDir, 'test', `${subject}.csv`), balanceLetters(rows.slice(PER_SUBJECT.dev), balance));
  }
  console.log(
    `poetry-mc: ${author.length + nextLine.length} questions (${poets.length} poets, held-out poems) -> ${outDir}`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildEvalTasks(join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'tasks', 'poetry-mc'));
}
