import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import wabtInit from 'wabt';
import { renderAccessKernelWat } from '../../src/accel/kernel-template.js';

/**
 * src/accel/access-kernel-wasm.ts is generated from the template src/accel/access-kernel.wat: this test
 * fills the template's placeholders from the layout declarations (src/accel/kernel-template.ts), compiles
 * the result with wabt and checks the generated file against it (a file snapshot). After editing the .wat
 * or moving a word of a layout, `npm run build:wasm` rewrites the generated file (vitest -u on this test).
 */
function renderModule(bytes: Uint8Array): string {
  const base64 = Buffer.from(bytes).toString('base64');
  const lines = base64.match(/.{1,100}/g) ?? [];
  return [
    '// Generated from the template access-kernel.wat and the layouts (kernel-template.ts) by',
    '// `npm run build:wasm` (test/accel/access-kernel-build.test.ts checks it): do not edit.',
    '',
    "/** The access kernel's WebAssembly module (access-kernel.wat), base64. */",
    'export const accessKernelWasmBase64 =',
    ...lines.map((line, index) => `  '${line}'${index === lines.length - 1 ? ';' : ' +'}`),
    '',
  ].join('\n');
}

const template = readFileSync(new URL('../../src/accel/access-kernel.wat', import.meta.url), 'utf8');

describe('access kernel build', () => {
  test('access-kernel-wasm.ts holds the compiled bytes of access-kernel.wat, filled from the layouts', async () => {
    const wabt = await wabtInit();
    // Shared memory is the threads feature. (wabt's own validate() rejects shared memories even with it
    // enabled, in 1.0.39; V8 validates the bytes below.)
    const text = renderAccessKernelWat(template);
    const bytes = wabt.parseWat('access-kernel.wat', text, { threads: true }).toBinary({}).buffer;
    expect(WebAssembly.validate(bytes)).toBe(true);
    await expect(renderModule(bytes)).toMatchFileSnapshot('../../src/accel/access-kernel-wasm.ts');
  });

  test('the template keeps no offset or layout constant of its own: every one is a placeholder', () => {
    expect(template.match(/offset=\d/g)).toBeNull();
    const text = renderAccessKernelWat(template);
    expect(text.match(/offset=\d+/g)?.length).toBeGreaterThan(70);
    expect(text).not.toMatch(/\{\{/);
  });

  test('a placeholder without a value fails the build, naming it', () => {
    expect(() => renderAccessKernelWat(`${template}\n;; {{l1d.nowhere}}`)).toThrow(/l1d\.nowhere/);
  });
});
