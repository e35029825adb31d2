/**
 * Everything the CLI shows a person goes to stderr, and only on a terminal; stdout carries
 * results alone, so `--json` output is always exactly one parseable object.
 */
export interface Reporter {
  /** A transient status line ("loading model ..."), redrawn in place. */
  status(text: string): void;
  /** Clears the status line. */
  done(): void;
}

export function terminalReporter(stream: NodeJS.WriteStream = process.stderr): Reporter {
  if (!stream.isTTY) return { status() {}, done() {} };
  let shown = false;
  return {
    status(text) {
      const width = Math.max(20, (stream.columns ?? 80) - 1);
      stream.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
      shown = true;
    },
    done() {
      if (shown) stream.write('\r\x1b[2K');
      shown = false;
    },
  };
}

/** Left-aligned text columns, numbers right-aligned; cells longer than `maxWidth` are cut. */
export function formatTable(header: string[], body: string[][], numeric: boolean[], maxWidth = 48): string {
  const cut = (s: string) => (s.length > maxWidth ? `${s.slice(0, maxWidth - 1)}…` : s);
  const cells = [header, ...body].map((r) => r.map(cut));
  const widths = header.map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((v, c) => (numeric[c] ? v.padStart(widths[c]) : v.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
