import { assert } from '../assert.js';
import { cacheLineBytes, pageBytes } from '../constants.js';
import type { Machine } from '../machine.js';
import type { Region } from '../memory/regions.js';
import { type ExitReasonSpec, exitCatalogue } from './exits.js';

/**
 * Handler programs compiled for one hyperthread: region names resolved to the instance this vCPU
 * uses (its VM, itself, its hyperthread) and to the kernel VA the handler reaches it through, in flat
 * typed arrays so the state machine's hot path allocates nothing.
 */
export const OpKind = { compute: 0, access: 1 } as const;

export interface CompiledVariant {
  name: string;
  reason: number;
  /** The reason's catalogue name (`HLT`; a user handler's new reason too), what policies see. */
  reasonName: string;
  variant: number;
  /**
   * This variant's place among all variants of the catalogue, in catalogue order (reason by reason):
   * its record in a thread's exit-stats array (cpu/exit-breakdown.ts).
   */
  slot: number;
  action: 'resume' | 'vmm' | 'halt' | 'ipi';
  vmmCycles: number;
  /** The exit a sibling kick causes (not a workload exit). */
  isKick: boolean;
  /**
   * Every region the handler touches is one the RFC's kvm:N maps (Region.inKvmAddressSpace): under ASI
   * it runs without a fault; without ASI it is one of KVM's confined handlers, which leave KVM's
   * `l1tf_flush_l1d` alone (PolicyView.l1tfFlushL1d).
   */
  confined: boolean;
  /** Confidential-VM memory operation (exits.ts `conversion`), or null. */
  conversion: 'map-gpa-range' | 'psc' | 'accept' | null;
  kinds: Int32Array;
  /** access: first byte VA; compute: 0. */
  vas: Float64Array;
  /** access: lines touched; compute: cycles. */
  amounts: Int32Array;
  writes: Uint8Array;
}

export interface CompiledCatalogue {
  /** [reason][variant] */
  variants: CompiledVariant[][];
  /** Cumulative variant weights per reason, for drawing a variant. */
  variantCumulative: Float64Array[];
}

function regionInstance(machine: Machine, kind: string, thread: number, vmId: number, vcpu: number): Region {
  const candidates = [kind, `${kind}:${vmId}`, `${kind}:${vmId}/${vcpu}`, `${kind}/${thread}`];
  for (const name of candidates) {
    const region = machine.plan.regions.find((candidate) => candidate.name === name);
    if (region) return region;
  }
  assert(false, `no instance of region ${kind} for thread ${thread} (vm ${vmId}, vcpu ${vcpu})`);
}

export function compileCatalogue(
  machine: Machine,
  thread: number,
  vmId: number,
  vcpu: number,
  catalogue: readonly ExitReasonSpec[] = exitCatalogue,
): CompiledCatalogue {
  const variants: CompiledVariant[][] = [];
  const variantCumulative: Float64Array[] = [];
  let slot = 0;
  catalogue.forEach((spec, reason) => {
    const compiled: CompiledVariant[] = [];
    const cumulative = new Float64Array(spec.variants.length);
    const total = spec.variants.reduce((sum, variant) => sum + variant.weight, 0);
    let running = 0;
    spec.variants.forEach((variant, variantIndex) => {
      const count = variant.ops.length;
      const kinds = new Int32Array(count);
      const vas = new Float64Array(count);
      const amounts = new Int32Array(count);
      const writes = new Uint8Array(count);
      let confined = true;
      variant.ops.forEach((op, i) => {
        if (op.op === 'compute') {
          kinds[i] = OpKind.compute;
          amounts[i] = op.cycles;
          return;
        }
        const region = regionInstance(machine, op.region, thread, vmId, vcpu);
        if (op.offsetBytes + op.bytes > region.frames * pageBytes) {
          // Built only on failure: every run compiles every handler of every thread.
          assert(
            false,
            `${spec.name}:${variant.name} reaches past region ${region.name} (${op.offsetBytes}+${op.bytes} > ${region.frames * pageBytes})`,
          );
        }
        if (!region.inKvmAddressSpace) confined = false;
        kinds[i] = OpKind.access;
        vas[i] = machine.regionVa(region) + op.offsetBytes;
        amounts[i] = Math.max(1, Math.ceil(op.bytes / cacheLineBytes));
        writes[i] = op.write ? 1 : 0;
      });
      running += total > 0 ? variant.weight / total : 0;
      cumulative[variantIndex] = running;
      compiled.push({
        name: `${spec.name}:${variant.name}`,
        reason,
        reasonName: spec.name,
        variant: variantIndex,
        slot: slot++,
        action: variant.action,
        vmmCycles: variant.vmmCycles ?? 0,
        isKick: spec.name === 'EXTERNAL_INTERRUPT' && variant.name === 'kick',
        confined,
        conversion: variant.conversion ?? null,
        kinds,
        vas,
        amounts,
        writes,
      });
    });
    if (total > 0) cumulative[cumulative.length - 1] = 1;
    variants.push(compiled);
    variantCumulative.push(cumulative);
  });
  return { variants, variantCumulative };
}

const compiledByMachine = new WeakMap<
  Machine,
  WeakMap<readonly ExitReasonSpec[], Map<number, CompiledCatalogue>>
>();

/**
 * A machine's compiled catalogue for one hyperthread, compiled on first use and shared afterwards:
 * it depends only on what the machine was built with (regions; `vmId` and `vcpu` follow from its
 * pinning) and the catalogue (built-in, or with a workload's user handlers), and nothing writes a
 * compiled variant, so a machine reused across runs (benches, fuzz cases, policy comparisons) compiles
 * once instead of at every run (~0.1 ms a run, ~1% of a bench run).
 */
export function compiledCatalogueOf(
  machine: Machine,
  thread: number,
  vmId: number,
  vcpu: number,
  catalogue: readonly ExitReasonSpec[] = exitCatalogue,
): CompiledCatalogue {
  const byCatalogue = cached(compiledByMachine, machine, () => new WeakMap());
  const byThread = cached(byCatalogue, catalogue, () => new Map());
  return cached(byThread, thread, () => compileCatalogue(machine, thread, vmId, vcpu, catalogue));
}

/** The value under `key`, made and stored by `make` the first time. */
function cached<K extends object | number, V>(
  map: { get(key: K): V | undefined; set(key: K, value: V): unknown },
  key: K,
  make: () => V,
): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}
