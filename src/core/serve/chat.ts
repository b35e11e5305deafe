// ChatML, the template Steel-LLM and Qwen1.5 chat in:
//   <|im_start|>system\n…<|im_end|>\n<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n
// The special tokens are inserted as ids; message content is encoded as ordinary text, so a
// message that contains "<|im_end|>" cannot forge the end of its turn. Chat (renderChatML) and
// fine-tuning (renderChatTurns) share this one rendering, so a model is asked as it was taught.
import type { ChatMessage } from '../../shared/serve-protocol';
import type { BpeTokenizer } from '../tokenizer';

export interface ChatSpecials {
  imStart: number;
  imEnd: number;
  endOfText: number;
}

export function chatSpecials(tokenizer: BpeTokenizer): ChatSpecials {
  const id = (token: string): number => tokenizer.encode(token, { allowSpecial: true })[0];
  return { imStart: id('<|im_start|>'), imEnd: id('<|im_end|>'), endOfText: id('<|endoftext|>') };
}

/** A rendered conversation: its ids, and for each id whether it is the assistant's to learn (1) or not (0). */
export interface RenderedTurns {
  ids: number[];
  assistant: number[];
}

/**
 * Ids of whole turns. An assistant turn's content and its <|im_end|> are marked as the assistant's
 * (the model learns to end its turn); headers, the newline between turns and other roles are not.
 * The header is encoded apart from the content, as the generation prompt's header is.
 */
export function renderChatTurns(tokenizer: BpeTokenizer, messages: readonly ChatMessage[]): RenderedTurns {
  const { imStart, imEnd } = chatSpecials(tokenizer);
  const newline = tokenizer.encode('\n');
  const out: RenderedTurns = { ids: [], assistant: [] };
  const add = (ids: readonly number[], learn: boolean) => {
    out.ids.push(...ids);
    for (let i = 0; i < ids.length; i++) out.assistant.push(learn ? 1 : 0);
  };
  for (const m of messages) {
    const learn = m.role === 'assistant';
    add([imStart, ...tokenizer.encode(`${m.role}\n`)], false);
    add([...tokenizer.encode(m.content), imEnd], learn);
    add(newline, false);
  }
  return out;
}

/** Ids of the conversation, ending with the header of the assistant's turn. */
export function renderChatML(tokenizer: BpeTokenizer, messages: readonly ChatMessage[]): number[] {
  const { imStart } = chatSpecials(tokenizer);
  return [...renderChatTurns(tokenizer, messages).ids, imStart, ...tokenizer.encode('assistant\n')];
}
