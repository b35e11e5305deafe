// @steelscope in VS Code's chat view (the chat participant API, VS Code 1.90+): answers from the
// checkpoint the dashboard chat used last, or the best one of the newest run, through the same
// serve processes as the dashboard. Registered only where the API exists. One prompt at a time:
// earlier turns are not sent (the model's text in them is escaped markdown, not the text itself).
import * as vscode from 'vscode';
import type { RunStoreApi } from '../runs/types';
import { doneNote, generateParams, type ChatHub } from './dashboardChat';
import { answeringLine, LiteralBlock, participantChoice } from './participantText';

export const PARTICIPANT_ID = 'steelscope.chat';

export function registerChatParticipant(
  context: vscode.ExtensionContext,
  store: RunStoreApi,
  hub: ChatHub,
): vscode.Disposable[] {
  // The namespace is missing in editors older than 1.90 and in some builds without a chat UI.
  const chat = (vscode as { chat?: Partial<typeof vscode.chat> }).chat;
  if (typeof chat?.createChatParticipant !== 'function') return [];
  const participant = chat.createChatParticipant(PARTICIPANT_ID, (request, _context, stream, token) =>
    answer(store, hub, request, stream, token),
  );
  participant.iconPath = vscode.Uri.joinPath(context.extensionUri, 'media', 'steelscope.svg');
  return [participant];
}

async function answer(
  store: RunStoreApi,
  hub: ChatHub,
  request: vscode.ChatRequest,
  stream: vscode.ChatResponseStream,
  token: vscode.CancellationToken,
): Promise<vscode.ChatResult> {
  const choice = participantChoice(store, hub.last);
  if (!choice) {
    stream.markdown(
      'There is no checkpoint to answer from yet: train a run (**Steelscope: Start Training…**) until it saves one.',
    );
    return {};
  }
  stream.markdown(answeringLine(choice));
  const block = new LiteralBlock();
  const generation = hub.generate(
    choice.dir,
    generateParams(choice.settings, [{ role: 'user', content: request.prompt }]),
    (piece) => {
      const md = block.push(piece);
      if (md !== '') stream.markdown(md);
    },
  );
  const cancelled = token.onCancellationRequested(() => generation.cancel());
  try {
    const done = await generation.done;
    stream.markdown(`${block.end()}*${block.isEmpty ? 'No text · ' : ''}${doneNote(done)}*`);
    return {};
  } catch (err) {
    return { errorDetails: { message: err instanceof Error ? err.message : String(err) } };
  } finally {
    cancelled.dispose();
  }
}
