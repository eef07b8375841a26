import { assert, assertInteger } from '../assert.js';
import { pageBytes } from '../constants.js';
import { CapacityError } from '../errors.js';
import { domainFree, domainName } from '../memory/domains.js';

/**
 * Physical frames for confidential-VM memory. The machine's frames and their owner domains belong to
 * another module (the machine buffer); the coco modules only see this interface, injected. Owner
 * codes are the dense domains of memory/domains.ts: `vmDomain(v)` for memory the host may reach,
 * `privateDomain(v)` for guest-private memory (INV-10).
 */
export interface FrameSource {
  /** Takes a free frame and gives it to `domain`; throws `CapacityError` when none is left. */
  allocFrame(domain: number): number;
  /** Returns a frame to the free pool (its owner becomes `free`). */
  freeFrame(pfn: number): void;
  /** Changes the owner of an allocated frame (a private/shared conversion). */
  setOwner(pfn: number, domain: number): void;
  ownerOf(pfn: number): number;
}

/**
 * A FrameSource over a plain array of owners, for tests and for code that runs without a machine
 * buffer. Free frames are kept on a stack so that allocation is O(1) and deterministic: frames are
 * handed out in ascending order first, then most-recently-freed first.
 */
export class SimpleFrameSource implements FrameSource {
  private readonly owners: Int32Array;
  private readonly freeStack: Int32Array;
  private freeCount: number;

  constructor(readonly frameCount: number) {
    assertInteger(frameCount, 'frameCount');
    assert(frameCount > 0 && frameCount <= 2 ** 24, `frameCount must be in 1..2^24, got ${frameCount}`);
    this.owners = new Int32Array(frameCount); // all domainFree (0)
    this.freeStack = new Int32Array(frameCount);
    for (let i = 0; i < frameCount; i++) this.freeStack[i] = frameCount - 1 - i;
    this.freeCount = frameCount;
  }

  get framesFree(): number {
    return this.freeCount;
  }

  allocFrame(domain: number): number {
    assert(Number.isInteger(domain) && domain > domainFree, `cannot allocate a frame to domain ${domain}`);
    if (this.freeCount === 0) {
      throw new CapacityError('SimpleFrameSource', this.frameCount, 'create it with more frames');
    }
    this.freeCount--;
    const pfn = this.freeStack[this.freeCount];
    assert(this.owners[pfn] === domainFree, `frame ${pfn} on the free stack is owned`);
    this.owners[pfn] = domain;
    return pfn;
  }

  freeFrame(pfn: number): void {
    this.checkPfn(pfn);
    assert(this.owners[pfn] !== domainFree, `double free of frame ${pfn}`);
    this.owners[pfn] = domainFree;
    this.freeStack[this.freeCount] = pfn;
    this.freeCount++;
    assert(this.freeCount <= this.frameCount, 'free stack overflow');
  }

  setOwner(pfn: number, domain: number): void {
    this.checkPfn(pfn);
    assert(this.owners[pfn] !== domainFree, `setOwner on free frame ${pfn}`);
    assert(Number.isInteger(domain) && domain > domainFree, `cannot give frame ${pfn} to domain ${domain}`);
    this.owners[pfn] = domain;
  }

  ownerOf(pfn: number): number {
    this.checkPfn(pfn);
    return this.owners[pfn];
  }

  private checkPfn(pfn: number): void {
    assert(Number.isInteger(pfn) && pfn >= 0 && pfn < this.frameCount, `pfn ${pfn} out of range`);
  }
}

/**
 * Frames together with their contents. Contents are sparse: a page gets a 4 KiB buffer on its first
 * write; a page never written (or scrubbed) reads as zeros. Freeing a frame drops its contents, so a
 * frame handed out again never shows what it held before (the kernel clears pages before reuse).
 *
 * Reads and writes here are "functional" (gem5's term): they do not check who may access the frame.
 * The callers (guest_memfd, the VM facade) check attributes and owners first.
 */
export class FrameStore {
  private readonly contents = new Map<number, Uint8Array>();
  private framesHeldCount = 0;

  constructor(readonly source: FrameSource) {}

  /** Frames allocated through this store and not yet freed. */
  get framesHeld(): number {
    return this.framesHeldCount;
  }

  alloc(domain: number): number {
    const pfn = this.source.allocFrame(domain);
    assert(this.source.ownerOf(pfn) === domain, `frame ${pfn} was not given to ${domainName(domain)}`);
    assert(!this.contents.has(pfn), `fresh frame ${pfn} still has contents`);
    this.framesHeldCount++;
    return pfn;
  }

  free(pfn: number): void {
    this.contents.delete(pfn);
    this.source.freeFrame(pfn);
    this.framesHeldCount--;
    assert(this.framesHeldCount >= 0, 'freed more frames than allocated');
  }

  setOwner(pfn: number, domain: number): void {
    this.source.setOwner(pfn, domain);
    assert(this.source.ownerOf(pfn) === domain, `frame ${pfn} owner did not change`);
  }

  ownerOf(pfn: number): number {
    return this.source.ownerOf(pfn);
  }

  /** Forgets the contents of a frame: it reads as zeros again (a conversion that does not preserve). */
  scrub(pfn: number): void {
    this.contents.delete(pfn);
  }

  /** Whether the frame holds anything but zeros that were never written. */
  isWritten(pfn: number): boolean {
    return this.contents.has(pfn);
  }

  read(pfn: number, offsetBytes: number, target: Uint8Array): void {
    checkSpan(offsetBytes, target.length);
    const page = this.contents.get(pfn);
    if (page === undefined) target.fill(0);
    else target.set(page.subarray(offsetBytes, offsetBytes + target.length));
  }

  write(pfn: number, offsetBytes: number, source: Uint8Array): void {
    checkSpan(offsetBytes, source.length);
    let page = this.contents.get(pfn);
    if (page === undefined) {
      page = new Uint8Array(pageBytes);
      this.contents.set(pfn, page);
    }
    page.set(source, offsetBytes);
  }
}

function checkSpan(offsetBytes: number, lengthBytes: number): void {
  assert(
    Number.isInteger(offsetBytes) && offsetBytes >= 0 && offsetBytes + lengthBytes <= pageBytes,
    `access [${offsetBytes}, +${lengthBytes}) leaves the page`,
  );
}
