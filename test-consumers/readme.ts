// The fenced code blocks of the repository's READMEs, as a user copies them. Every ```ts/```sh block in
// README.md, example/README.md and worker/README.md is preceded by one marker line:
//   <!-- snippet: <id> -->   run as written by a test (test-consumers/) that reads it with snippet()
//   <!-- illustrative -->    shows a shape, is not meant to run as pasted (the README says so next to it)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './support.ts';

export const READMES = ['README.md', 'example/README.md', 'worker/README.md'] as const;

export interface Block {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  /** The marker before it: a snippet id, 'illustrative', or null when it has none. */
  marker: string | null;
}

const MARKER = /^\s*<!--\s*(?:snippet:\s*([A-Za-z0-9._-]+)|(illustrative))\s*-->\s*$/;

export function readmeBlocks(file: string): Block[] {
  const lines = readFileSync(join(REPO, file), 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i] as string);
    if (!open) continue;
    const indent = open[1] as string;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !new RegExp(`^${indent}\`\`\`\\s*$`).test(lines[i] as string); i++) {
      body.push((lines[i] as string).startsWith(indent) ? (lines[i] as string).slice(indent.length) : (lines[i] as string));
    }
    let marker: string | null = null;
    for (let j = start - 1; j >= 0; j--) {
      const l = lines[j] as string;
      if (l.trim() === '') continue;
      const m = MARKER.exec(l);
      if (m) marker = m[1] ?? m[2] ?? null;
      break;
    }
    blocks.push({ file, line: start + 1, lang: open[2] as string, code: `${body.join('\n')}\n`, marker });
  }
  return blocks;
}

/** The code of the block marked `<!-- snippet: id -->` in `file` (exactly one must exist). */
export function snippet(file: string, id: string): string {
  const found = readmeBlocks(file).filter((b) => b.marker === id);
  if (found.length !== 1) throw new Error(`${file}: expected one block marked snippet ${id}, found ${found.length}`);
  return (found[0] as Block).code;
}
