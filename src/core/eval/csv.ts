// RFC 4180 CSV reading for evaluation task files. Hand-written because no CSV parser is among
// the installed packages (node_modules is shared and frozen) and the grammar is small: quoted
// fields with "" escapes, commas and newlines (\n or \r\n) inside quotes, a UTF-8 BOM.

export class CsvError extends Error {
  override name = 'DataError';
}

/** Rows of fields; a trailing newline adds no empty row. Throws CsvError on an unclosed quote. */
export function parseCsv(text: string, source = 'CSV'): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let fieldStarted = false;
  const endField = () => {
    row.push(field);
    field = '';
    fieldStarted = false;
  };
  const endRow = () => {
    endField();
    rows.push(row);
    row = [];
  };
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c !== '"') field += c;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (c === '"' && !fieldStarted) {
      quoted = true;
      fieldStarted = true;
    } else if (c === ',') endField();
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRow();
    } else {
      field += c;
      fieldStarted = true;
    }
  }
  if (quoted)
    throw new CsvError(`${source}: a quoted field is never closed; check its quotes (a field's " is written "").`);
  if (fieldStarted || field !== '' || row.length > 0) endRow();
  return rows;
}
