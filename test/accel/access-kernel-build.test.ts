import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import wabtInit from 'wabt';

/**
 * src/accel/access-kernel-wasm.ts is generated from src/accel/access-kernel.wat: this test compiles the
 * .wat with wabt and checks the generated file against the result (a file snapshot). After editing the
 * .wat, `npm run build:wasm` rewrites the generated file (vitest -u on this test).
 */
function renderModule(bytes: Uint8Array): string {
  const base64 = Buffer.from(bytes).toString('base64');
  const lines = base64.match(/.{1,100}/g) ?? [];
  return [
    '// Generated from access-kernel.wat by `npm run build:wasm` (test/cache/access-kernel-build.test.ts',
    '// checks it): do not edit.',
    '',
    "/** The access kernel's WebAssembly module (access-kernel.wat), base64. */",
    'export const accessKernelWasmBase64 =',
    ...lines.map((line, index) => `  '${line}'${index === lines.length - 1 ? ';' : ' +'}`),
    '',
  ].join('\n');
}

describe('access kernel build', () => {
  test('access-kernel-wasm.ts holds the compiled bytes of access-kernel.wat', async () => {
    const wabt = await wabtInit();
    const text = readFileSync(new URL('../../src/accel/access-kernel.wat', import.meta.url), 'utf8');
    // Shared memory is the threads feature. (wabt's own validate() rejects shared memories even with it
    // enabled, in 1.0.39; V8 validates the bytes below.)
    const bytes = wabt.parseWat('access-kernel.wat', text, { threads: true }).toBinary({}).buffer;
    expect(WebAssembly.validate(bytes)).toBe(true);
    await expect(renderModule(bytes)).toMatchFileSnapshot('../../src/accel/access-kernel-wasm.ts');
  });
});
