/**
 * The parts of the WebAssembly JavaScript API the access kernel uses (accel/access-kernel.ts). Node has
 * them as globals; TypeScript declares them only in its DOM library, which this package leaves out (its
 * code runs on Node). No exported signature mentions these types, so the emitted declarations need none.
 */
declare namespace WebAssembly {
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    /** A SharedArrayBuffer for a shared memory; a new object after each `grow`. */
    readonly buffer: SharedArrayBuffer;
    /** Grows by `deltaPages` 64 KiB pages; returns the previous size in pages. */
    grow(deltaPages: number): number;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  function validate(bytes: Uint8Array): boolean;
  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
}
