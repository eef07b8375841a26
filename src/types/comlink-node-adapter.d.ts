/**
 * comlink 4.4 ships its node adapter as an ES module but has no `exports` map, and its `.d.ts` sits
 * next to the `.mjs` under another name, so TypeScript (NodeNext) finds no types for the file path we
 * import. This declares the one default export we use (node_modules/comlink/dist/esm/node-adapter.d.ts).
 */
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';

  export interface NodeEndpoint {
    // biome-ignore lint/suspicious/noExplicitAny: Node's MessagePort and Worker take Transferable lists
    postMessage(message: any, transfer?: any[]): void;
    // biome-ignore lint/suspicious/noExplicitAny: the listener type of Node's EventEmitter.on
    on(type: string, listener: (...args: any[]) => void): unknown;
    // biome-ignore lint/suspicious/noExplicitAny: the listener type of Node's EventEmitter.off
    off(type: string, listener: (...args: any[]) => void): unknown;
    start?: () => void;
  }

  export default function nodeEndpoint(endpoint: NodeEndpoint): Endpoint;
}
