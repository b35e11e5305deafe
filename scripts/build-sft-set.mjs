// Derives the shipped instruction set poetry-sft (chat JSONL for `steelscope sft --data
// poetry-sft`) from the default corpus's poems, in its script (traditional): each conversation
// asks for a poem by title, then for its author —
//   user 寫一首題為《title》的詩 → assistant the poem;  user 這首詩的作者是誰？ → assistant the poet
// Only short poems (two lines at most), so a conversation fits one row of the tiny preset's
// seq_len. Deterministic: the corpus's own order, every STRIDE-th eligible poem.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { selectCorpus } from './build-corpus.mjs';

const CONVERSATIONS = 400;
const STRIDE = 7;
const MAX_LINE_CHARS = 16;

export function buildSftSet(outFile) {
  const { lines } = selectCorpus();
  const eligible = [];
  for (const line of lines) {
    const [title, poet, ...body] = JSON.parse(line).text.split('\n');
    if (body.length >= 1 && body.length <= 2 && body.every((l) => l.length <= MAX_LINE_CHARS))
      eligible.push({ title, poet, body });
  }
  const picked = eligible.filter((_, i) => i % STRIDE === 0).slice(0, CONVERSATIONS);
  const out = picked.map(({ title, poet, body }) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `寫一首題為《${title}》的詩` },
        { role: 'assistant', content: body.join('\n') },
        { role: 'user', content: '這首詩的作者是誰？' },
        { role: 'assistant', content: poet },
      ],
    }),
  );
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, out.join('\n') + '\n');
  console.log(`poetry-sft: ${out.length} conversations (of ${eligible.length} short poems) -> ${outFile}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildSftSet(join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'sft', 'poetry-sft.jsonl'));
}
