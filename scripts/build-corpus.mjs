// Derives the embedded default corpus from the MIT-licensed `chinese-poetry` package (a
// build-time source only): Tang and Song shi poems, which the package keeps in traditional
// characters. We keep to that one script so the vocabulary is not spent on simplified twins.
// One document per poem: title, author, then the body lines. Poems with editorial marks
// (□, brackets, notes) or more than 16 lines are skipped. Output: corpus/poetry.jsonl.gz
// ({"text": …} per line, the same format users may bring) and the package's LICENSE.
import { readFileSync, writeFileSync, mkdirSync, readdirSync, copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BUDGET_BYTES = 6 * 1024 * 1024; // UTF-8 text kept, before compression
const MAX_LINES = 16;
const EDITORIAL = /[□〖〗（）()\[\]【】{}<>《》「」『』0-9A-Za-z]/;

function poemFiles(dir, kind) {
  const files = readdirSync(dir).filter((f) => f.startsWith(`poet.${kind}.`) && f.endsWith('.json'));
  return files.sort((a, b) => Number(a.split('.')[2]) - Number(b.split('.')[2])).map((f) => join(dir, f));
}

export function toDocument(poem) {
  const body = (poem.paragraphs ?? []).map((l) => String(l).trim()).filter(Boolean);
  const title = String(poem.title ?? '').trim();
  const author = String(poem.author ?? '').trim();
  if (!title || !author || body.length === 0 || body.length > MAX_LINES) return null;
  const text = [title, author, ...body].join('\n');
  return EDITORIAL.test(text) ? null : text;
}

/** The package's folder and its Tang and Song poem files (in the order the corpus reads them). */
export function poetrySource() {
  const require = createRequire(import.meta.url);
  const pkgDir = dirname(require.resolve('chinese-poetry/package.json'));
  const dataDir = join(pkgDir, 'dist', 'quantangshi');
  return { pkgDir, tang: poemFiles(dataDir, 'tang'), song: poemFiles(dataDir, 'song') };
}

/** The corpus documents, and the poem files read for them (build-eval-tasks.mjs holds those out). */
export function selectCorpus() {
  const { pkgDir, tang, song } = poetrySource();
  const lines = [];
  const filesRead = new Set();
  let bytes = 0;
  // Alternate Tang and Song files so both dynasties are represented within the budget.
  for (let i = 0; bytes < BUDGET_BYTES && (i < tang.length || i < song.length); i++) {
    for (const file of [tang[i], song[i]]) {
      if (!file || bytes >= BUDGET_BYTES) continue;
      filesRead.add(file);
      for (const poem of JSON.parse(readFileSync(file, 'utf8'))) {
        const text = toDocument(poem);
        if (!text) continue;
        lines.push(JSON.stringify({ text }));
        bytes += Buffer.byteLength(text);
        if (bytes >= BUDGET_BYTES) break;
      }
    }
  }
  return { pkgDir, lines, bytes, filesRead };
}

export async function buildCorpus(outDir) {
  const { pkgDir, lines, bytes } = selectCorpus();
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'poetry.jsonl.gz'), gzipSync(lines.join('\n') + '\n', { level: 9 }));
  copyFileSync(join(pkgDir, 'LICENSE'), join(outDir, 'LICENSE-chinese-poetry'));
  console.log(`default corpus: ${lines.length} poems, ${(bytes / 1048576).toFixed(1)} MiB of text -> ${outDir}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildCorpus(join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'corpus'));
}
