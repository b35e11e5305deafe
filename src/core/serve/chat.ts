// ChatML, the template Steel-LLM and Qwen1.5 chat in:
//   <|im_start|>system\n…<|im_end|>\n<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n
// The special tokens are inserted as ids; message content is encoded as ordinary text, so a
// message that contains "<|im_end|>" cannot forge the end of its turn.
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

/** Ids of the conversation, ending with the header of the assistant's turn. */
export function renderChatML(tokenizer: BpeTokenizer, messages: readonly ChatMessage[]): number[] {
  const { imStart, imEnd } = chatSpecials(tokenizer);
  const ids: number[] = [];
  for (const m of messages) {
    ids.push(imStart, ...tokenizer.encode(`${m.role}\n${m.content}`), imEnd, ...tokenizer.encode('\n'));
  }
  ids.push(imStart, ...tokenizer.encode('assistant\n'));
  return ids;
}
