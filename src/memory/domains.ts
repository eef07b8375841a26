import { assert } from '../assert.js';

/**
 * Owner domains of physical frames (DESIGN.md "Domains"). A domain is a small dense integer so that a
 * core's L1D can keep a count of lines per domain in a flat Int32Array:
 *
 *   0 free, 1 public, 2 kvm, 3 host, then per VM v: 4 + 2v = vm:v, 5 + 2v = private:v
 *
 * `private:v` are guest-private frames of a confidential VM (guest_memfd / SNP-assigned): foreign to
 * every host address space and to every other VM.
 */
export const domainFree = 0;
export const domainPublic = 1;
export const domainKvm = 2;
export const domainHost = 3;
const firstVmDomain = 4;

export type DomainKind = 'free' | 'public' | 'kvm' | 'host' | 'vm' | 'private';

export function vmDomain(vmId: number): number {
  return firstVmDomain + 2 * vmId;
}

export function privateDomain(vmId: number): number {
  return firstVmDomain + 2 * vmId + 1;
}

/** Number of dense domain codes for a machine with `vmCount` VMs. */
export function domainCount(vmCount: number): number {
  return firstVmDomain + 2 * vmCount;
}

export function domainKind(domain: number): DomainKind {
  assert(Number.isInteger(domain) && domain >= 0, `bad domain code ${domain}`);
  if (domain === domainFree) return 'free';
  if (domain === domainPublic) return 'public';
  if (domain === domainKvm) return 'kvm';
  if (domain === domainHost) return 'host';
  return (domain - firstVmDomain) % 2 === 0 ? 'vm' : 'private';
}

/** The VM a `vm:` or `private:` domain belongs to, or -1 for the host-side domains. */
export function domainVm(domain: number): number {
  return domain < firstVmDomain ? -1 : (domain - firstVmDomain) >> 1;
}

export function domainName(domain: number): string {
  const kind = domainKind(domain);
  return kind === 'vm' || kind === 'private' ? `${kind}:${domainVm(domain)}` : kind;
}

/** Parses `public`, `kvm`, `host`, `free`, `vm:3`, `private:3`; returns -1 when not a domain name. */
export function parseDomain(name: string): number {
  switch (name) {
    case 'free':
      return domainFree;
    case 'public':
      return domainPublic;
    case 'kvm':
      return domainKvm;
    case 'host':
      return domainHost;
  }
  const match = /^(vm|private):(\d+)$/.exec(name);
  if (!match) return -1;
  const vmId = Number(match[2]);
  return match[1] === 'vm' ? vmDomain(vmId) : privateDomain(vmId);
}

/**
 * Whether a line of `domain` is foreign to guest `vmId` (INV-2): anything secret that is not this
 * VM's own. `public` and `kvm` hold no secrets; `free` frames hold nothing.
 */
export function isForeignTo(domain: number, vmId: number): boolean {
  if (domain <= domainKvm) return false;
  if (domain === domainHost) return true;
  return domainVm(domain) !== vmId;
}

/** Whether `domain` is some VM's `private:` domain (domainKind's 'private', without building a string). */
export function isPrivateDomain(domain: number): boolean {
  return domain >= firstVmDomain && (domain - firstVmDomain) % 2 === 1;
}

/** Whether `domain` may be mapped in the isolated address space `kvm:vmId` (INV-5). */
export function isAllowedInKvm(domain: number, vmId: number): boolean {
  return domain === domainPublic || domain === domainKvm || domain === vmDomain(vmId);
}
