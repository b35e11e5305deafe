// Text from run folders and checkpoints written into Markdown (tooltips, chat answers) must read as
// the text it is: never a link, an image, HTML or a `$(icon)`.

/** Backslash-escapes Markdown syntax in a short text written into a sentence; whitespace runs become one space. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!<>|$~&]/g, '\\$&').replace(/\s+/g, ' ');
}
