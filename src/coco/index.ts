/**
 * The confidential-VM memory model (`import { ... } from 'asi-emu/coco'`), for tests written against it
 * the way KVM's selftests are written against the kernel: a VM's memory (`VmMemory`: memslots,
 * guest_memfd, memory attributes, memory-fault and MAP_GPA_RANGE exits), the errors it raises with
 * KVM's errno names, SEV-SNP page state changes (PSC), PVALIDATE and the RMP, TDX accept, the guest's
 * unaccepted-memory bookkeeping, and the host's shared-range trackers. Each module names the kernel
 * file it follows.
 *
 *   import { SimpleFrameSource, VmMemory, kvmMemoryAttributePrivate } from 'asi-emu/coco';
 *   const vm = new VmMemory({ vmId: 0, frames: new SimpleFrameSource(1024), type: 'sw-protected' });
 *
 * The machine-level pieces (`ConfidentialVm`, runs, policies) are in `asi-emu`.
 */

export { pageBytes, pageShift } from '../constants.js';
export { domainFree, domainName, privateDomain, vmDomain } from '../memory/domains.js';
export { type ConfidentialOptions, ConfidentialVm, type ConversionStats } from './confidential-vm.js';
export { errnoNumbers, isKvmError, type KvmErrno, KvmError, type U64 } from './errno.js';
export { type FrameSource, FrameStore, SimpleFrameSource } from './frame-source.js';
export {
  type FileRef,
  fallocFlCollapseRange,
  fallocFlInsertRange,
  fallocFlKeepSize,
  fallocFlPunchHole,
  fallocFlUnshareRange,
  fallocFlZeroRange,
  GuestMemfd,
  GuestMemfdMapping,
  type GuestMemfdVm,
  guestMemfdFlagInitShared,
  guestMemfdFlagMmap,
  type HostAccessFault,
  type OtherFile,
  supportedGuestMemfdFlags,
} from './guest-memfd.js';
export {
  type AcceptedPieces,
  type AcceptMemoryResult,
  type ArchAccept,
  type ArchAcceptOutcome,
  type BeginAcceptResult,
  type ProcessUnacceptedResult,
  UnacceptedMemory,
  type UnacceptedMemoryOptions,
  unacceptedUnitBytes,
  unacceptedUnitPages,
} from './lazy-accept.js';
export {
  kvmInternalMemSlots,
  kvmMaxNrAddressSpaces,
  kvmMemGuestMemfd,
  kvmMemLogDirtyPages,
  kvmMemMaxNrPages,
  kvmMemReadonly,
  kvmMemSlotsNum,
  kvmSetUserMemoryRegionV1Flags,
  kvmUserMemSlots,
  type Memslot,
  type MemslotChange,
  MemslotTable,
  type MemslotVm,
  taskSizeMaxBytes,
  type UserMemoryRegion,
  type UserMemoryRegion2,
} from './memslots.js';
export {
  buildPscDescriptors,
  type ConversionStep,
  createPscDescriptor,
  type GuestPscOutcome,
  type GuestPscTermination,
  ghcbSharedBufferBytes,
  ghcbTermPsc,
  guestPscRequest,
  guestSetPagesState,
  // psc.ts's exit is the hypervisor's merged range, not vm-memory.ts's KVM_EXIT_HYPERCALL record.
  type MapGpaRangeExit as PscMapGpaRangeExit,
  type PscDescriptor,
  type PscEntry,
  type PscHeader,
  type PscHostContext,
  type PscHostResult,
  type PscHostResultName,
  processPsc,
  pscEntriesMax,
  pscErrorGeneric,
  pscErrorInvalidEntry,
  pscErrorInvalidHeader,
  pscGuestCallsMax,
  pscOpPrivate,
  pscOpShared,
  type SetPagesStateOutcome,
  type SnpGuestContext,
} from './psc.js';
export {
  type GuestPvalidateOutcome,
  ghcbTermPvalidate,
  guestPvalidate,
  type PvalidateNpfReason,
  type PvalidateResult,
  type PvalidateReturnName,
  pvalidate,
  pvalidateReturnCodes,
  type SnpGuestView,
  sevTermSetLinux,
  type ValidateOnceViolation,
} from './pvalidate.js';
export {
  framesPer2M,
  type HostAccessResult,
  Rmp,
  type RmpEntryView,
  type RmpHostAccessFault,
  type RmpPageSize,
  type RmpUpdateFailure,
  type RmpUpdateRequest,
  type RmpUpdateResult,
  rmpAsidMax,
  rmpFlags,
  rmpPageSize2M,
  rmpPageSize4K,
  rmpUpdateReturnCodes,
} from './rmp.js';
export * from './shared-tracking/index.js';
export {
  type TdxAcceptCall,
  type TdxAcceptOutcome,
  type TdxAcceptStatus,
  TdxGuestMemory,
  type TdxPageLevel,
  type TdxPageState,
  tdxAcceptMemory,
  tdxLevel1G,
  tdxLevel2M,
  tdxLevel4K,
  tdxLevelPages,
  tdxStatusHex,
} from './tdx-accept.js';
export {
  type BackingInfo,
  convertOnMapGpaRange,
  type GuestAccessExit,
  type GuestAccessKind,
  type HypercallResult,
  kvmEinval,
  kvmEnosys,
  kvmEperm,
  kvmExitHypercall,
  kvmExitHypercallValidMask,
  kvmExitMemoryFault,
  kvmExitMmio,
  kvmHcMapGpaRange,
  kvmMapGpaRangeDecrypted,
  kvmMapGpaRangeEncrypted,
  kvmMapGpaRangePageSize1G,
  kvmMapGpaRangePageSize2M,
  kvmMemoryAttributePrivate,
  kvmMemoryExitFlagPrivate,
  type MapGpaRangeExit,
  type MapGpaRangeHandler,
  type MemoryAttributes,
  type MemoryFaultExit,
  type MmioExit,
  VmMemory,
  type VmMemoryOptions,
  type VmType,
} from './vm-memory.js';
