// worker/Dockerfile's header comment is what a user reads first in the package: the README section it
// names exists, and its build recipe is README.md's, line for line.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readmeBlocks } from '../../test-consumers/readme.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('worker/Dockerfile header', () => {
  const dockerfile = read('worker/Dockerfile');
  const readme = read('README.md').split('\n');

  it('names a README section and paragraph that exist', () => {
    const ref = /README\.md, "([^"]+)", its paragraph "([^"]+)"/.exec(dockerfile.replace(/\n#\s*/g, ' '));
    expect(ref, 'the comment names README.md, "<section>", its paragraph "<paragraph>"').not.toBeNull();
    const [, section, paragraph] = ref as unknown as [string, string, string];
    const heading = readme.findIndex((l) => /^#{2,4} /.test(l) && l.replace(/^#+ /, '') === section);
    expect(heading, `README.md has no section "${section}"`).toBeGreaterThanOrEqual(0);
    const next = readme.findIndex((l, i) => i > heading && /^## /.test(l));
    const inSection = readme.slice(heading, next < 0 ? undefined : next);
    expect(
      inSection.some((l) => l.startsWith(`**${paragraph}**`)),
      `no paragraph "${paragraph}" in "${section}"`,
    ).toBe(true);
  });

  it("shows README.md's container recipe as written", () => {
    const at = readme.findIndex((l) => l.startsWith('**In a container**')) + 1;
    const block = readmeBlocks('README.md').find((b) => b.line > at && b.lang === 'sh');
    const recipe = dockerfile
      .split('\n')
      .filter((l) => l.startsWith('#   '))
      .map((l) => l.slice(4));
    expect(recipe.length).toBeGreaterThan(0);
    expect(`${recipe.join('\n')}\n`).toBe(block?.code);
  });
});
