;; The access kernel: a memory access's hot path over the machine buffer (a shared WebAssembly memory).
;; `translate` is a TLB hit (`Tlb.translatePage`, paging/tlb.ts, which does everything else); `access` is
;; one cache-line access of a core through its L1D and, on a miss, its fill buffers (`CoreL1d.accessHeld`
;; and `CoreFillBuffers.accessHeld`, cache/l1d.ts and cache/fill-buffers.ts); `guestAccess` and `lineAccess` are the
;; two, with the frame's owner between, for a guest's read and a handler's line (one call from JavaScript
;; each); `guestReads` is a guest stretch's reads, each drawn from the sim PRNG's batch, in one call;
;; `flushLines` is the line loop of an L1D flush (`CoreL1d.flushLines`) and `flushFillBuffers` the
;; entry work of a fill-buffer flush (`CoreFillBuffers.flushEntries`); `sfc32` makes a batch of the sim's random
;; draws (backend/sim/prng.ts); `zeroWords` zeroes a run of words. Those stay the reference: differential tests
;; (test/accel/access-kernel.test.ts, test/accel/tlb-kernel.test.ts, test/accel/guest-access-kernel.test.ts,
;; test/accel/guest-reads-kernel.test.ts, test/sim/prng.test.ts) run both on the same streams and compare every word. The kernel makes their
;; reads and writes, so a sim run's results and trace hash are the same with it or without it.
;;
;; Addresses are byte addresses (Int32 index x 4). This file is a template: every offset and layout constant
;; is a placeholder in double braces, filled at build time from the layouts' one declaration (memory/layout.ts,
;; memory/sub-layouts.ts, paging/tlb.ts; the values: kernel-template.ts), and compiled into
;; access-kernel-wasm.ts by `npm run build:wasm` (wabt); a test checks that the bytes there are this
;; file's, filled. The layouts as the code below reads them:
;;   L1D:          lock, validLines, clock | counts[domains] | setState[sets] |
;;                 lines[sets][ways] {pfn, lineInPage, owner, stamp} | hints[sets][l1dHintSlots]
;;   fill buffers: lock, validLines, nextSlot | counts[domains] | entries[n] {pfn, lineInPage, owner} |
;;                 filter[fillBufferFilterBuckets]
;;   TLB (a thread's record, memory/layout.ts): entries[sets][ways] {tagFlags, vpnLow, vpnHigh, pfn}, with
;;         tagFlags = address space + 1 in the tag mask's bits (0: invalid) and the flags above them
;; What the code assumes beyond the placeholders (an L1D line is one v128, a TLB entry four words, a way
;; five bits of an LRU key) is checked when the template is filled.
;; A core's cache descriptor (below, `access`) holds where its parts begin and its geometry, and the
;; flushes take it too; a thread's descriptor (`translate`, `guestAccess`) its TLB's. Both are written
;; once, from the machine's layout, by kernel-descriptor.ts; their words are memory/sub-layouts.ts
;; `CacheDescriptorWord` and `KernelDescriptorWord`.
;; Owners are domain + 1, 0 for an invalid line (core-buffer.ts `ownerOf`). Small helpers are written
;; out where they are used (a call between two Wasm functions stays a call). `guestAccess`, `guestReads`
;; and `lineAccess` do call `translate` and `access`, and `guestReads` calls `sfc32` (a call inside the
;; kernel is cheaper than a second call from JavaScript, and the bodies stay written once).
(module
  ;; At most sim-arena.ts `simArenaPagesMax` pages (512 MiB): every byte address is below 2^31.
  (import "env" "memory" (memory 0 {{memoryPagesMax}} shared))

  ;; A core's cache descriptor (memory/sub-layouts.ts `CacheDescriptorWord`, written by
  ;; kernel-descriptor.ts): byte
  ;; addresses of its sections and the geometry derived from them once, where `access` derived them from
  ;; the sections' indices and the geometry at every call (ten arguments, half of them passed on the stack
  ;; and spilled before the first line was read). Words:
  ;;   0 L1D header, 1 sets - 1, 2 page mask (max(1, sets / 64) - 1), 3 bytes of a set (ways x 16),
  ;;   4 lines, 5 hints, 6 set states, 7 ways, 8 1 for PLRU, 9 fill-buffer header, 10 fill-buffer
  ;;   entries (0: none), 11 first fill-buffer entry, 12 fill-buffer filter.
  ;;
  ;; `access`: one line (frame, line in the page, owner domain) through the core of descriptor $c (its
  ;; Int32 index). Returns 1 on an L1D hit, 0 on a miss (the fill buffers then took the line), and -1,
  ;; having changed nothing, when the LRU clock would reach l1dStampMax (2^26 - 1): the caller then takes
  ;; the reference path, which renumbers the stamps (once per ~2^26 accesses of a core).
  (func $access (export "access")
    (param $c i32) (param $pfn i32) (param $line i32) (param $domain i32)
    (result i32)
    (local $l1d i32) (local $plru i32) (local $hit i32)
    (local $owner i32) (local $ownerCounts i32) (local $lines i32)
    (local $setBytes i32) (local $set i32) (local $setAt i32) (local $setEnd i32) (local $hintAt i32)
    (local $at i32) (local $hinted i32) (local $stamp i32) (local $minKey i32) (local $wayKey i32)
    (local $below i32) (local $old i32) (local $clock i32) (local $word i32)
    (local $bitsAt i32) (local $bits i32) (local $node i32) (local $way i32) (local $span i32)
    (local $firstWay i32)
    (local $fb i32) (local $fbEntries i32)
    (local $fbCounts i32) (local $first i32) (local $filter i32) (local $bucketAt i32) (local $fbAt i32)
    (local $fbEnd i32) (local $fbOld i32) (local $slot i32)
    (local $groupEnd i32) (local $matched i32) (local $invalid i32) (local $firstMatch i32)
    (local $w0 v128) (local $w1 v128) (local $w2 v128) (local $w3 v128) (local $low v128) (local $high v128)
    (local $stamps v128) (local $minKeys v128) (local $wayKeys v128) (local $pfns v128) (local $lines4 v128)
    (local.set $c (i32.shl (local.get $c) (i32.const 2)))
    (local.set $l1d (i32.load offset={{cache.l1d}} (local.get $c)))
    (local.set $plru (i32.load offset={{cache.plru}} (local.get $c)))
    (local.set $owner (i32.add (local.get $domain) (i32.const 1)))
    (local.set $clock (i32.add (i32.load offset={{l1d.clock}} (local.get $l1d)) (i32.const 1)))
    (if (i32.and (i32.eqz (local.get $plru)) (i32.ge_s (local.get $clock) (i32.const {{l1dStampMax}})))
      (then (return (i32.const -1))))
    ;; counts[domain] at ownerCounts + owner x 4 (the counts begin after the 3 header words)
    (local.set $ownerCounts (i32.add (local.get $l1d) (i32.const {{l1d.countsLessOne}})))
    (local.set $lines (i32.load offset={{cache.lines}} (local.get $c)))
    (local.set $setBytes (i32.load offset={{cache.setBytes}} (local.get $c)))
    ;; set = ((pfn & pageMask) x 64 + line) & (sets - 1)
    (local.set $set
      (i32.and
        (i32.add (i32.shl (i32.and (local.get $pfn) (i32.load offset={{cache.pageMask}} (local.get $c))) (i32.const {{linesPerPageLog2}}))
          (local.get $line))
        (i32.load offset={{cache.setMask}} (local.get $c))))
    (local.set $setAt (i32.add (local.get $lines) (i32.mul (local.get $set) (local.get $setBytes))))
    (local.set $setEnd (i32.add (local.get $setAt) (local.get $setBytes)))
    ;; hints[set][hash(pfn)]
    (local.set $hintAt
      (i32.add (i32.load offset={{cache.hints}} (local.get $c))
        (i32.shl
          (i32.add (i32.shl (local.get $set) (i32.const {{l1d.hintSlotsLog2}}))
            (i32.shr_u (i32.mul (local.get $pfn) (i32.const {{frameHashMultiplier}})) (i32.const {{l1d.hintShift}})))
          (i32.const 2))))

    (block $touch
      (block $found
        ;; The hinted way first.
        (local.set $hinted (i32.sub (i32.load (local.get $hintAt)) (i32.const 1)))
        (if (i32.ge_s (local.get $hinted) (i32.const 0))
          (then
            (local.set $at (i32.add (local.get $setAt) (i32.shl (local.get $hinted) (i32.const 4))))
            (if (i32.load offset={{l1dLine.stamp}} (local.get $at))
              (then
                (br_if $found
                  (i32.eqz
                    (i32.or
                      (i32.xor (i32.load (local.get $at)) (local.get $pfn))
                      (i32.xor (i32.load offset={{l1dLine.lineInPage}} (local.get $at)) (local.get $line)))))))))
        ;; The scan: ways in order up to the line or the first invalid way, keeping the smallest LRU key
        ;; (stamp << 5 | way). Four ways a turn with SIMD while four are left (a way is one v128: pfn,
        ;; line, owner, stamp; the four are transposed into a vector of pfns, of lines and of stamps), the
        ;; rest one at a time. Most guest accesses miss in a full set and read every way: one at a time, a
        ;; 12-way set read every way.
        (local.set $at (local.get $setAt))
        (local.set $minKey (i32.const 0x7fffffff))
        (block $scanned
          ;; An empty set (way 0 invalid) without the vectors: a core's sets are often empty after a flush.
          (br_if $scanned (i32.eqz (i32.load offset={{l1dLine.stamp}} (local.get $at))))
          (local.set $pfns (i32x4.splat (local.get $pfn)))
          (local.set $lines4 (i32x4.splat (local.get $line)))
          (local.set $minKeys (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
          (local.set $wayKeys (v128.const i32x4 0 1 2 3))
          (local.set $groupEnd (i32.sub (local.get $setEnd) (i32.const 64)))
          (block $grouped
            (loop $group
              (br_if $grouped (i32.gt_s (local.get $at) (local.get $groupEnd)))
              (local.set $w0 (v128.load (local.get $at)))
              (local.set $w1 (v128.load offset={{l1dLine.next1}} (local.get $at)))
              (local.set $w2 (v128.load offset={{l1dLine.next2}} (local.get $at)))
              (local.set $w3 (v128.load offset={{l1dLine.next3}} (local.get $at)))
              ;; pfn and line lanes: (p0 p1 l0 l1) and (p2 p3 l2 l3), then (p0 p1 p2 p3), (l0 l1 l2 l3)
              (local.set $low
                (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $w0) (local.get $w1)))
              (local.set $high
                (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $w2) (local.get $w3)))
              ;; a way matches where its pfn and line do (an invalid way's zeros may match; the first
              ;; invalid way comes first below, as the one-at-a-time scan stops there)
              (local.set $matched
                (i32x4.bitmask
                  (v128.and
                    (i32x4.eq (local.get $pfns)
                      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $low) (local.get $high)))
                    (i32x4.eq (local.get $lines4)
                      (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31
                        (local.get $low) (local.get $high))))))
              ;; stamp lanes: (o0 o1 s0 s1) and (o2 o3 s2 s3), then (s0 s1 s2 s3)
              (local.set $low
                (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $w0) (local.get $w1)))
              (local.set $high
                (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $w2) (local.get $w3)))
              (local.set $stamps
                (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $low) (local.get $high)))
              (local.set $invalid (i32x4.bitmask (i32x4.eq (local.get $stamps) (v128.const i32x4 0 0 0 0))))
              (if (i32.or (local.get $matched) (local.get $invalid))
                (then
                  ;; the first of the group's matching and invalid ways (ctz of a nibble or 16: 4 for none)
                  (local.set $firstMatch (i32.ctz (i32.or (local.get $matched) (i32.const 16))))
                  (if (i32.lt_u (local.get $firstMatch) (i32.ctz (i32.or (local.get $invalid) (i32.const 16))))
                    (then
                      (local.set $at (i32.add (local.get $at) (i32.shl (local.get $firstMatch) (i32.const 4))))
                      (i32.store (local.get $hintAt)
                        (i32.add (i32.shr_u (i32.sub (local.get $at) (local.get $setAt)) (i32.const 4))
                          (i32.const 1)))
                      (br $found)))
                  ;; the first invalid way: a miss fills it
                  (local.set $at
                    (i32.add (local.get $at)
                      (i32.shl (i32.ctz (local.get $invalid)) (i32.const 4))))
                  (br $scanned)))
              (local.set $minKeys
                (i32x4.min_s (local.get $minKeys)
                  (v128.or (i32x4.shl (local.get $stamps) (i32.const 5)) (local.get $wayKeys))))
              (local.set $wayKeys (i32x4.add (local.get $wayKeys) (v128.const i32x4 4 4 4 4)))
              (local.set $at (i32.add (local.get $at) (i32.const 64)))
              (br $group)))
          ;; the groups' smallest key, and the rest of the ways one at a time from way (at - setAt) / 16
          (local.set $minKeys
            (i32x4.min_s (local.get $minKeys)
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $minKeys) (local.get $minKeys))))
          (local.set $minKey
            (i32x4.extract_lane 0
              (i32x4.min_s (local.get $minKeys)
                (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11
                  (local.get $minKeys) (local.get $minKeys)))))
          (local.set $wayKey (i32.shr_u (i32.sub (local.get $at) (local.get $setAt)) (i32.const 4)))
          (loop $scan
            (br_if $scanned (i32.ge_u (local.get $at) (local.get $setEnd)))
            (local.set $stamp (i32.load offset={{l1dLine.stamp}} (local.get $at)))
            (br_if $scanned (i32.eqz (local.get $stamp)))
            (if (i32.eq (i32.load (local.get $at)) (local.get $pfn))
              (then
                (if (i32.eq (i32.load offset={{l1dLine.lineInPage}} (local.get $at)) (local.get $line))
                  (then
                    (i32.store (local.get $hintAt)
                      (i32.add (i32.shr_u (i32.sub (local.get $at) (local.get $setAt)) (i32.const 4))
                        (i32.const 1)))
                    (br $found)))))
            (local.set $below
              (i32.sub (i32.or (i32.shl (local.get $stamp) (i32.const 5)) (local.get $wayKey))
                (local.get $minKey)))
            (local.set $minKey
              (i32.add (local.get $minKey)
                (i32.and (local.get $below) (i32.shr_s (local.get $below) (i32.const 31)))))
            (local.set $wayKey (i32.add (local.get $wayKey) (i32.const 1)))
            (local.set $at (i32.add (local.get $at) (i32.const 16)))
            (br $scan)))
        ;; A miss: the first invalid way, or in a full set the LRU victim or the way the PLRU tree bits
        ;; lead to from the root (CoreL1d.plruVictim: bit n set, the victim is right of node n).
        (if (i32.eq (local.get $at) (local.get $setEnd))
          (then
            (if (local.get $plru)
              (then
                (local.set $bits
                  (i32.load
                    (i32.add (i32.load offset={{cache.setState}} (local.get $c)) (i32.shl (local.get $set) (i32.const 2)))))
                (local.set $node (i32.const 1))
                (local.set $way (i32.const 0))
                (local.set $span (i32.shr_s (i32.load offset={{cache.ways}} (local.get $c)) (i32.const 1)))
                (block $chosen
                  (loop $level
                    (br_if $chosen (i32.lt_s (local.get $span) (i32.const 1)))
                    (if (i32.and (local.get $bits) (i32.shl (i32.const 1) (local.get $node)))
                      (then
                        (local.set $way (i32.add (local.get $way) (local.get $span)))
                        (local.set $node (i32.add (i32.shl (local.get $node) (i32.const 1)) (i32.const 1))))
                      (else (local.set $node (i32.shl (local.get $node) (i32.const 1)))))
                    (local.set $span (i32.shr_s (local.get $span) (i32.const 1)))
                    (br $level))))
              (else (local.set $way (i32.and (local.get $minKey) (i32.const 31)))))
            (local.set $at (i32.add (local.get $setAt) (i32.shl (local.get $way) (i32.const 4))))))
        ;; CoreL1d.fill: the evicted line's domain count (or the valid-line total) and the new owner's.
        (local.set $old (i32.load offset={{l1dLine.owner}} (local.get $at)))
        (if (i32.eqz (local.get $old))
          (then
            (i32.store offset={{l1d.validLines}} (local.get $l1d) (i32.add (i32.load offset={{l1d.validLines}} (local.get $l1d)) (i32.const 1))))
          (else
            (local.set $word (i32.add (local.get $ownerCounts) (i32.shl (local.get $old) (i32.const 2))))
            (i32.store (local.get $word) (i32.sub (i32.load (local.get $word)) (i32.const 1)))))
        (i32.store (local.get $at) (local.get $pfn))
        (i32.store offset={{l1dLine.lineInPage}} (local.get $at) (local.get $line))
        (i32.store offset={{l1dLine.owner}} (local.get $at) (local.get $owner))
        (local.set $word (i32.add (local.get $ownerCounts) (i32.shl (local.get $owner) (i32.const 2))))
        (i32.store (local.get $word) (i32.add (i32.load (local.get $word)) (i32.const 1)))
        (i32.store (local.get $hintAt)
          (i32.add (i32.shr_u (i32.sub (local.get $at) (local.get $setAt)) (i32.const 4)) (i32.const 1)))
        (br $touch))
      ;; A hit: retag if the frame changed owner since the line came in (CoreL1d.retag).
      (local.set $hit (i32.const 1))
      (local.set $old (i32.load offset={{l1dLine.owner}} (local.get $at)))
      (if (i32.ne (local.get $old) (local.get $owner))
        (then
          (i32.store offset={{l1dLine.owner}} (local.get $at) (local.get $owner))
          (local.set $word (i32.add (local.get $ownerCounts) (i32.shl (local.get $old) (i32.const 2))))
          (i32.store (local.get $word) (i32.sub (i32.load (local.get $word)) (i32.const 1)))
          (local.set $word (i32.add (local.get $ownerCounts) (i32.shl (local.get $owner) (i32.const 2))))
          (i32.store (local.get $word) (i32.add (i32.load (local.get $word)) (i32.const 1))))))
    ;; CoreL1d.touch, after a hit or a miss's fill: under LRU a fresh stamp; under PLRU the line's stamp is
    ;; 1 and the tree bits on the way's path point away from it (node 1 is the root, node n has children
    ;; 2n and 2n + 1; bit n set: the victim is right).
    (if (local.get $plru)
      (then
        (i32.store offset={{l1dLine.stamp}} (local.get $at) (i32.const 1))
        (local.set $way (i32.shr_u (i32.sub (local.get $at) (local.get $setAt)) (i32.const 4)))
        (local.set $bitsAt
          (i32.add (i32.load offset={{cache.setState}} (local.get $c)) (i32.shl (local.get $set) (i32.const 2))))
        (local.set $bits (i32.load (local.get $bitsAt)))
        (local.set $node (i32.const 1))
        (local.set $firstWay (i32.const 0))
        (local.set $span (i32.shr_s (i32.load offset={{cache.ways}} (local.get $c)) (i32.const 1)))
        (block $pointed
          (loop $path
            (br_if $pointed (i32.lt_s (local.get $span) (i32.const 1)))
            (if (i32.ge_s (local.get $way) (i32.add (local.get $firstWay) (local.get $span)))
              (then
                (local.set $bits
                  (i32.and (local.get $bits) (i32.xor (i32.shl (i32.const 1) (local.get $node)) (i32.const -1))))
                (local.set $firstWay (i32.add (local.get $firstWay) (local.get $span)))
                (local.set $node (i32.add (i32.shl (local.get $node) (i32.const 1)) (i32.const 1))))
              (else
                (local.set $bits (i32.or (local.get $bits) (i32.shl (i32.const 1) (local.get $node))))
                (local.set $node (i32.shl (local.get $node) (i32.const 1)))))
            (local.set $span (i32.shr_s (local.get $span) (i32.const 1)))
            (br $path)))
        (i32.store (local.get $bitsAt) (local.get $bits)))
      (else
        (i32.store offset={{l1d.clock}} (local.get $l1d) (local.get $clock))
        (i32.store offset={{l1dLine.stamp}} (local.get $at) (local.get $clock))))
    (if (local.get $hit) (then (return (i32.const 1))))
    ;; CoreFillBuffers.accessHeld (entries > 0), written out here (a call between two Wasm functions
    ;; stays a call, and this runs at most accesses: the model's guests miss in the L1D four
    ;; times in five): a hit retags; a miss fills the next slot in order. The filter counts the valid
    ;; entries per bucket of fillBufferFilterBucket(pfn, line) = ((pfn x 0x9e3779b1) >>> 26 ^ line) & 63.
    (block $fbDone
      (local.set $fbEntries (i32.load offset={{cache.fillBufferEntries}} (local.get $c)))
      (br_if $fbDone (i32.eqz (local.get $fbEntries)))
      (local.set $fb (i32.load offset={{cache.fillBuffers}} (local.get $c)))
      (local.set $fbCounts (i32.add (local.get $fb) (i32.const {{fillBuffers.countsLessOne}})))
      (local.set $first (i32.load offset={{cache.fillBufferFirst}} (local.get $c)))
      (local.set $filter (i32.load offset={{cache.fillBufferFilter}} (local.get $c)))
      (local.set $bucketAt
        (i32.add (local.get $filter)
          (i32.shl
            (i32.and
              (i32.xor (i32.shr_u (i32.mul (local.get $pfn) (i32.const {{frameHashMultiplier}})) (i32.const {{fillBuffers.filterShift}}))
                (local.get $line))
              (i32.const {{fillBuffers.filterMask}}))
            (i32.const 2))))
      (block $missed
        (br_if $missed (i32.eqz (i32.load (local.get $bucketAt))))
        ;; CoreFillBuffers.find: the valid entries are a prefix (filled in order since the last flush).
        (local.set $fbAt (local.get $first))
        (local.set $fbEnd
          (i32.add (local.get $first) (i32.mul (i32.load offset={{fillBuffers.validLines}} (local.get $fb)) (i32.const {{fillEntry.bytes}}))))
        (loop $find
          (br_if $missed (i32.ge_u (local.get $fbAt) (local.get $fbEnd)))
          (if (i32.eqz
                (i32.or
                  (i32.xor (i32.load (local.get $fbAt)) (local.get $pfn))
                  (i32.xor (i32.load offset={{fillEntry.lineInPage}} (local.get $fbAt)) (local.get $line))))
            (then
              (local.set $fbOld (i32.load offset={{fillEntry.owner}} (local.get $fbAt)))
              (br_if $fbDone (i32.eq (local.get $fbOld) (local.get $owner)))
              (i32.store offset={{fillEntry.owner}} (local.get $fbAt) (local.get $owner))
              ;; CoreFillBuffers.recount (a valid entry: its old owner is nonzero)
              (local.set $word (i32.add (local.get $fbCounts) (i32.shl (local.get $fbOld) (i32.const 2))))
              (i32.store (local.get $word) (i32.sub (i32.load (local.get $word)) (i32.const 1)))
              (local.set $word (i32.add (local.get $fbCounts) (i32.shl (local.get $owner) (i32.const 2))))
              (i32.store (local.get $word) (i32.add (i32.load (local.get $word)) (i32.const 1)))
              (br $fbDone)))
          (local.set $fbAt (i32.add (local.get $fbAt) (i32.const {{fillEntry.bytes}})))
          (br $find)))
      ;; A miss: the next slot, whose old line leaves the filter.
      (local.set $slot (i32.load offset={{fillBuffers.nextSlot}} (local.get $fb)))
      (local.set $fbAt (i32.add (local.get $first) (i32.mul (local.get $slot) (i32.const {{fillEntry.bytes}}))))
      (local.set $fbOld (i32.load offset={{fillEntry.owner}} (local.get $fbAt)))
      (if (local.get $fbOld)
        (then
          (local.set $word
            (i32.add (local.get $filter)
              (i32.shl
                (i32.and
                  (i32.xor
                    (i32.shr_u (i32.mul (i32.load (local.get $fbAt)) (i32.const {{frameHashMultiplier}})) (i32.const {{fillBuffers.filterShift}}))
                    (i32.load offset={{fillEntry.lineInPage}} (local.get $fbAt)))
                  (i32.const {{fillBuffers.filterMask}}))
                (i32.const 2))))
          (i32.store (local.get $word) (i32.sub (i32.load (local.get $word)) (i32.const 1)))
          ;; CoreFillBuffers.recount: the old owner's count
          (local.set $word (i32.add (local.get $fbCounts) (i32.shl (local.get $fbOld) (i32.const 2))))
          (i32.store (local.get $word) (i32.sub (i32.load (local.get $word)) (i32.const 1))))
        (else
          ;; CoreFillBuffers.recount: an empty entry, one more valid
          (i32.store offset={{fillBuffers.validLines}} (local.get $fb) (i32.add (i32.load offset={{fillBuffers.validLines}} (local.get $fb)) (i32.const 1)))))
      (i32.store (local.get $bucketAt) (i32.add (i32.load (local.get $bucketAt)) (i32.const 1)))
      (i32.store (local.get $fbAt) (local.get $pfn))
      (i32.store offset={{fillEntry.lineInPage}} (local.get $fbAt) (local.get $line))
      (i32.store offset={{fillEntry.owner}} (local.get $fbAt) (local.get $owner))
      (local.set $slot (i32.add (local.get $slot) (i32.const 1)))
      (i32.store offset={{fillBuffers.nextSlot}} (local.get $fb)
        (select (i32.const 0) (local.get $slot) (i32.eq (local.get $slot) (local.get $fbEntries))))
      (local.set $word (i32.add (local.get $fbCounts) (i32.shl (local.get $owner) (i32.const 2))))
      (i32.store (local.get $word) (i32.add (i32.load (local.get $word)) (i32.const 1))))
    (i32.const 0))

  ;; A TLB hit of page vpnHigh x 2^30 + vpnLow in address space $space for $access (Access bits: 1 write,
  ;; 2 user, 4 exec) through the TLB of the thread whose descriptor is at Int32 index $d (its words 0-6,
  ;; below): the frame, with the thread's hit count bumped. -1, having changed nothing, for
  ;; everything else, which the caller hands to `Tlb.translatePage`: a generation that moved (shootdown),
  ;; an entry of another space that is global (it may serve, unless the space is an EPT), a permission
  ;; miss, a miss.
  (func $translate (export "translate")
    (param $d i32) (param $space i32) (param $vpnLow i32) (param $vpnHigh i32) (param $access i32)
    (result i32)
    (local $at i32) (local $end i32) (local $tagFlags i32) (local $flags i32) (local $need i32)
    (local $ways i32) (local $hitsAt i32)
    (local.set $d (i32.shl (local.get $d) (i32.const 2)))
    ;; the generation the TLB last saw for the space, and the page tables' generation of it now
    (if (i32.ne
          (i32.load (i32.shl (i32.add (i32.load offset={{thread.seenGenerations}} (local.get $d)) (local.get $space)) (i32.const 2)))
          (i32.load
            (i32.shl
              (i32.add (i32.load offset={{thread.generation0}} (local.get $d))
                (i32.mul (local.get $space) (i32.load offset={{thread.generationStride}} (local.get $d))))
              (i32.const 2))))
      (then (return (i32.const -1))))
    (local.set $ways (i32.load offset={{thread.tlbWays}} (local.get $d)))
    (local.set $at
      (i32.shl
        (i32.add (i32.load offset={{thread.tlbEntries}} (local.get $d))
          (i32.shl
            (i32.mul (i32.and (local.get $vpnLow) (i32.load offset={{thread.tlbSetMask}} (local.get $d))) (local.get $ways))
            (i32.const 2)))
        (i32.const 2)))
    (local.set $end (i32.add (local.get $at) (i32.shl (local.get $ways) (i32.const 4))))
    (block $none
      (loop $way
        (br_if $none (i32.ge_u (local.get $at) (local.get $end)))
        (if (i32.eqz
              (i32.or
                (i32.xor (i32.load offset={{tlbEntry.vpnLow}} (local.get $at)) (local.get $vpnLow))
                (i32.xor (i32.load offset={{tlbEntry.vpnHigh}} (local.get $at)) (local.get $vpnHigh))))
          (then
            (local.set $tagFlags (i32.load (local.get $at)))
            (if (local.get $tagFlags)
              (then
                (local.set $flags (i32.shr_u (local.get $tagFlags) (i32.const {{tlb.flagShift}})))
                (if (i32.ne (i32.and (local.get $tagFlags) (i32.const {{tlb.tagMask}}))
                            (i32.add (local.get $space) (i32.const 1)))
                  (then
                    ;; Another space's entry: skipped unless global (TlbFlag.global = 8), which the
                    ;; reference decides (it asks whether the space is an EPT).
                    (br_if $none (i32.and (local.get $flags) (i32.const {{tlb.global}}))))
                  (else
                    ;; Tlb.permits: a write needs write and dirty (1 | 16), user needs 2, exec needs 4:
                    ;; the flags must hold every bit of need = (access & 1) x 17 | access & 6.
                    (local.set $need
                      (i32.or (i32.mul (i32.and (local.get $access) (i32.const 1)) (i32.const 17))
                        (i32.and (local.get $access) (i32.const 6))))
                    (br_if $none
                      (i32.ne (i32.and (local.get $flags) (local.get $need)) (local.get $need)))
                    ;; the thread's hit counter (descriptor word 6)
                    (local.set $hitsAt (i32.shl (i32.load offset={{thread.tlbHits}} (local.get $d)) (i32.const 2)))
                    (i32.store (local.get $hitsAt) (i32.add (i32.load (local.get $hitsAt)) (i32.const 1)))
                    (return (i32.load offset={{tlbEntry.pfn}} (local.get $at)))))))))
        (local.set $at (i32.add (local.get $at) (i32.const 16)))
        (br $way)))
    (i32.const -1))

  ;; A guest's memory access as `Hyperthread.touchGuestMemory` makes it: the read of line $line of guest page
  ;; $vpn (below 2^30) in address space $space through the thread's TLB, then through its core's caches
  ;; with the frame's owner from the frame table (`Tlb.translatePage`, `FrameTable.ownerOf`,
  ;; `CoreCaches.access`), in one call from JavaScript where there were two and an owner lookup between.
  ;; $d is the Int32 index of the thread's descriptor (memory/sub-layouts.ts `KernelDescriptorWord`):
  ;;   0 TLB entries, 1 set mask, 2 ways, 3 the TLB's seen generations (+ space),
  ;;   4 the page tables' generation of space 0, 5 the stride between spaces' generations, 6 hit counter,
  ;;   7 the frame table's owners (+ pfn), 8 the Int32 index of its core's cache descriptor (`access`'s
  ;;   first argument); 9 to 15 unused.
  ;; Returns `access`'s 1 (L1D hit) or 0 (miss); -1, having changed nothing, when `translate` hands the
  ;; page back (the caller then does it all in JavaScript); and -2 - pfn when the page translated (its hit
  ;; counted) but `access` handed the line back (the caller then makes the access alone).
  (func (export "guestAccess")
    (param $d i32) (param $space i32) (param $vpn i32) (param $line i32)
    (result i32)
    (local $pfn i32) (local $hit i32)
    (local.set $pfn (call $translate (local.get $d) (local.get $space) (local.get $vpn) (i32.const 0) (i32.const 0)))
    (if (i32.lt_s (local.get $pfn) (i32.const 0)) (then (return (i32.const -1))))
    (local.set $d (i32.shl (local.get $d) (i32.const 2)))
    (local.set $hit
      (call $access (i32.load offset={{thread.cacheDescriptor}} (local.get $d))
        (local.get $pfn) (local.get $line)
        (i32.load (i32.shl (i32.add (i32.load offset={{thread.frameOwners}} (local.get $d)) (local.get $pfn)) (i32.const 2)))))
    (if (i32.lt_s (local.get $hit) (i32.const 0))
      (then (return (i32.sub (i32.const -2) (local.get $pfn)))))
    (local.get $hit))

  ;; A guest stretch's accesses as `Hyperthread.touchGuestMemory` makes them (`ThreadAccess.guestReads`,
  ;; cpu/access-path.ts, whose reference is the plain loop `guestReadsLoop`): up to $count reads, each
  ;; drawing its page and line from the sim PRNG's batch (`Prng.random`, backend/sim/prng.ts: the batch of
  ;; {{sfc32AreaDraws}} doubles at Float64 index $draws, remade by `sfc32` from the state at Int32 index $state
  ;; when the cursor reaches its end, as `random` does before a draw) and then reading it as `guestAccess`
  ;; does, in one call from JavaScript where there were $count. The draw is `guestLineOf`
  ;; (cpu/guest-workload.ts): u x $pages, the page $firstPage + floor of it, the line floor of its fraction
  ;; x {{linesPerPage}}. Each read adds $hitCycles or $missCycles to $cycles, in order, so the sum is the
  ;; JavaScript loop's bit for bit. Returns the cycles; leaves the cursor and the reads made in the
  ;; stretch result at Int32 index $result (memory/sub-layouts.ts `StretchResultWord`).
  ;; It stops early, before the read it cannot finish, having drawn nothing for it (the cursor at that
  ;; read's draw; a batch remade for it stays made, as `random` would have made it): a translation that is
  ;; not a plain TLB hit (`translate`'s -1, which changed nothing) or an LRU clock about to reach
  ;; l1dStampMax (`access` would hand the line back). The caller makes that read in JavaScript, drawing
  ;; it from the same cursor, and calls again for the rest.
  (func (export "guestReads")
    (param $d i32) (param $space i32) (param $firstPage i32) (param $pages f64) (param $count i32)
    (param $hitCycles f64) (param $missCycles f64) (param $cycles f64)
    (param $state i32) (param $draws i32) (param $cursor i32) (param $result i32)
    (result f64)
    (local $dBytes i32) (local $c i32) (local $l1d i32) (local $lru i32) (local $owners i32)
    (local $reads i32) (local $draw f64) (local $whole f64) (local $pfn i32) (local $hit i32)
    (local.set $dBytes (i32.shl (local.get $d) (i32.const 2)))
    (local.set $c (i32.load offset={{thread.cacheDescriptor}} (local.get $dBytes)))
    (local.set $l1d (i32.load offset={{cache.l1d}} (i32.shl (local.get $c) (i32.const 2))))
    (local.set $lru (i32.eqz (i32.load offset={{cache.plru}} (i32.shl (local.get $c) (i32.const 2)))))
    (local.set $owners (i32.load offset={{thread.frameOwners}} (local.get $dBytes)))
    (block $stop
      (loop $next
        (br_if $stop (i32.ge_u (local.get $reads) (local.get $count)))
        ;; `access`'s own test: under LRU, a clock whose next stamp reaches l1dStampMax is renumbered first
        (br_if $stop
          (i32.and (local.get $lru)
            (i32.ge_s (i32.add (i32.load offset={{l1d.clock}} (local.get $l1d)) (i32.const 1))
              (i32.const {{l1dStampMax}}))))
        (if (i32.eq (local.get $cursor) (i32.const {{sfc32AreaDraws}}))
          (then
            (call $sfc32 (local.get $state) (local.get $draws) (i32.const {{sfc32AreaDraws}}))
            (local.set $cursor (i32.const 0))))
        (local.set $draw
          (f64.mul
            (f64.load (i32.shl (i32.add (local.get $draws) (local.get $cursor)) (i32.const 3)))
            (local.get $pages)))
        (local.set $whole (f64.floor (local.get $draw)))
        (local.set $pfn
          (call $translate (local.get $d) (local.get $space)
            (i32.add (local.get $firstPage) (i32.trunc_f64_s (local.get $whole))) (i32.const 0) (i32.const 0)))
        (br_if $stop (i32.lt_s (local.get $pfn) (i32.const 0)))
        (local.set $cursor (i32.add (local.get $cursor) (i32.const 1)))
        (local.set $hit
          (call $access (local.get $c) (local.get $pfn)
            (i32.trunc_f64_s
              (f64.floor (f64.mul (f64.sub (local.get $draw) (local.get $whole)) (f64.const {{linesPerPage}}))))
            (i32.load (i32.shl (i32.add (local.get $owners) (local.get $pfn)) (i32.const 2)))))
        ;; the clock was tested above: `access` hands nothing back here
        (if (i32.lt_s (local.get $hit) (i32.const 0)) (then (unreachable)))
        (local.set $cycles
          (f64.add (local.get $cycles) (select (local.get $hitCycles) (local.get $missCycles) (local.get $hit))))
        (local.set $reads (i32.add (local.get $reads) (i32.const 1)))
        (br $next)))
    (local.set $result (i32.shl (local.get $result) (i32.const 2)))
    (i32.store offset={{stretchResult.cursor}} (local.get $result) (local.get $cursor))
    (i32.store offset={{stretchResult.reads}} (local.get $result) (local.get $reads))
    (local.get $cycles))

  ;; A handler's access to one line: `Tlb.translate` of $va (a 48-bit address, exact in a double) in $space
  ;; for $access through the thread's TLB (a plain hit, as `translate`), then the line through the core's
  ;; caches with the frame's owner (`CoreCaches.access`, as `guestAccess`). $d: the thread's descriptor.
  ;; Returns pfn x 2 + 1 for an L1D hit, pfn x 2 for a miss (frames are below 2^30); -1, having changed
  ;; nothing, when `translate` hands the page back; -2 - pfn when the page translated (its hit counted)
  ;; and `access` handed the line back.
  (func (export "lineAccess")
    (param $d i32) (param $space i32) (param $va f64) (param $access i32)
    (result i32)
    (local $vpn i64) (local $pfn i32) (local $hit i32)
    (local.set $vpn (i64.shr_u (i64.trunc_f64_u (local.get $va)) (i64.const 12)))
    (local.set $pfn
      (call $translate (local.get $d) (local.get $space)
        (i32.wrap_i64 (i64.and (local.get $vpn) (i64.const 0x3fffffff)))
        (i32.wrap_i64 (i64.shr_u (local.get $vpn) (i64.const 30)))
        (local.get $access)))
    (if (i32.lt_s (local.get $pfn) (i32.const 0)) (then (return (i32.const -1))))
    (local.set $d (i32.shl (local.get $d) (i32.const 2)))
    (local.set $hit
      (call $access (i32.load offset={{thread.cacheDescriptor}} (local.get $d))
        (local.get $pfn)
        ;; the line in the page: bits 6..11 of the address
        (i32.and (i32.wrap_i64 (i64.shr_u (i64.trunc_f64_u (local.get $va)) (i64.const 6))) (i32.const 63))
        (i32.load (i32.shl (i32.add (i32.load offset={{thread.frameOwners}} (local.get $d)) (local.get $pfn)) (i32.const 2)))))
    (if (i32.lt_s (local.get $hit) (i32.const 0))
      (then (return (i32.sub (i32.const -2) (local.get $pfn)))))
    (i32.or (i32.shl (local.get $pfn) (i32.const 1)) (local.get $hit)))

  ;; The line loop of `CoreL1d.flushLines`: each set's valid lines (a prefix of its ways, stamp nonzero)
  ;; zeroed; returns how many. $c: the Int32 index of the core's cache descriptor (as `access`). The
  ;; caller checks and clears the counts as the reference does.
  (func (export "flushLines")
    (param $c i32)
    (result i32)
    (local $at i32) (local $setEnd i32) (local $end i32) (local $setBytes i32) (local $dropped i32)
    ;; from the core's cache descriptor $c: the lines, a set's bytes, and sets = set mask + 1
    (local.set $c (i32.shl (local.get $c) (i32.const 2)))
    (local.set $at (i32.load offset={{cache.lines}} (local.get $c)))
    (local.set $setBytes (i32.load offset={{cache.setBytes}} (local.get $c)))
    (local.set $end
      (i32.add (local.get $at)
        (i32.mul (i32.add (i32.load offset={{cache.setMask}} (local.get $c)) (i32.const 1)) (local.get $setBytes))))
    (block $done
      (loop $set
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $setEnd (i32.add (local.get $at) (local.get $setBytes)))
        (block $setDone
          (loop $line
            (br_if $setDone (i32.ge_u (local.get $at) (local.get $setEnd)))
            (br_if $setDone (i32.eqz (i32.load offset={{l1dLine.stamp}} (local.get $at))))
            (i64.store (local.get $at) (i64.const 0))
            (i64.store offset={{l1dLine.owner}} (local.get $at) (i64.const 0))
            (local.set $dropped (i32.add (local.get $dropped) (i32.const 1)))
            (local.set $at (i32.add (local.get $at) (i32.const 16)))
            (br $line)))
        (local.set $at (local.get $setEnd))
        (br $set)))
    (local.get $dropped))

  ;; The entry work of `CoreFillBuffers.flush` (the reference): the valid entries counted, the filter's
  ;; buckets summed, entries and filter zeroed, the ring restarted at slot 0. $c: the Int32 index of the
  ;; core's cache descriptor (as `access`), whose words 9-12 place the section, its entries and the
  ;; filter (64 buckets, right after the entries). Returns the valid entries when the filter's buckets
  ;; add up to them, else -1 - that count; the caller checks and clears the counts as the reference does.
  ;; In JavaScript a flush was slow: `TypedArray.prototype.fill` over the shared buffer and the
  ;; 64-bucket sum (asi / sysbench-cpu flushes every ~140 steps; docs/perf-log.md).
  (func (export "flushFillBuffers")
    (param $c i32)
    (result i32)
    (local $fb i32) (local $entries i32) (local $first i32) (local $at i32) (local $filter i32)
    (local $valid i32) (local $sum v128)
    ;; from the core's cache descriptor $c: the section, its entries, the first entry and the filter
    (local.set $c (i32.shl (local.get $c) (i32.const 2)))
    (local.set $fb (i32.load offset={{cache.fillBuffers}} (local.get $c)))
    (local.set $entries (i32.load offset={{cache.fillBufferEntries}} (local.get $c)))
    (local.set $first (i32.load offset={{cache.fillBufferFirst}} (local.get $c)))
    (local.set $filter (i32.load offset={{cache.fillBufferFilter}} (local.get $c)))
    ;; the valid entries: owner (word 2) nonzero
    (local.set $at (local.get $first))
    (block $counted
      (loop $entry
        (br_if $counted (i32.ge_u (local.get $at) (local.get $filter)))
        (local.set $valid
          (i32.add (local.get $valid) (i32.ne (i32.load offset={{fillEntry.owner}} (local.get $at)) (i32.const 0))))
        (local.set $at (i32.add (local.get $at) (i32.const 12)))
        (br $entry)))
    ;; the 64 buckets, four lanes at a time, in four rounds of four loads
    (block $summed
      (loop $buckets
        (br_if $summed (i32.ge_u (local.get $at) (i32.add (local.get $filter) (i32.const {{fillBuffers.filterBytes}}))))
        (local.set $sum
          (i32x4.add
            (i32x4.add (local.get $sum) (v128.load (local.get $at)))
            (i32x4.add (v128.load offset={{vector.1}} (local.get $at))
              (i32x4.add (v128.load offset={{vector.2}} (local.get $at)) (v128.load offset={{vector.3}} (local.get $at))))))
        (local.set $at (i32.add (local.get $at) (i32.const 64)))
        (br $buckets)))
    ;; entries and filter in one fill, and the next slot (header word 2) back to 0
    (memory.fill (local.get $first) (i32.const 0)
      (i32.add (i32.mul (local.get $entries) (i32.const {{fillEntry.bytes}})) (i32.const {{fillBuffers.filterBytes}})))
    (i32.store offset={{fillBuffers.nextSlot}} (local.get $fb) (i32.const 0))
    (if (result i32)
      (i32.eq (local.get $valid)
        (i32.add
          (i32.add (i32x4.extract_lane 0 (local.get $sum)) (i32x4.extract_lane 1 (local.get $sum)))
          (i32.add (i32x4.extract_lane 2 (local.get $sum)) (i32x4.extract_lane 3 (local.get $sum)))))
      (then (local.get $valid))
      (else (i32.sub (i32.const -1) (local.get $valid)))))

  ;; Zeroes $count Int32 words from Int32 index $at: a machine's reset between sim runs (`Machine.resetDynamicState`
  ;; zeroes ~170 KiB a run, where `TypedArray.prototype.fill` over a shared buffer stores element by element,
  ;; ~4 instructions a word).
  (func (export "zeroWords") (param $at i32) (param $count i32)
    (memory.fill (i32.shl (local.get $at) (i32.const 2)) (i32.const 0) (i32.shl (local.get $count) (i32.const 2))))

  ;; sfc32 (backend/sim/prng.ts, the reference): $count outputs of the generator whose state (a, b, c, d)
  ;; is at Int32 index $state, each stored as a double u32 x 2^-32 in [0, 1) from Float64 index $out, the
  ;; state written back. $count is a multiple of 4 (the sim's batch is memory/sub-layouts.ts `sfc32AreaDraws`, asserted there):
  ;; the loop makes four outputs a turn, one bound test and one stack check for four. The sim draws ~2
  ;; numbers a step; in JavaScript a batch cost ~30 instructions an output, most of them the conversion,
  ;; the bounds check and the store around the generator's 8.
  (func $sfc32 (export "sfc32") (param $state i32) (param $out i32) (param $count i32)
    (local $a i32) (local $b i32) (local $c i32) (local $d i32) (local $t i32) (local $end i32)
    (local.set $state (i32.shl (local.get $state) (i32.const 2)))
    (local.set $out (i32.shl (local.get $out) (i32.const 3)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $count) (i32.const 3))))
    (local.set $a (i32.load (local.get $state)))
    (local.set $b (i32.load offset={{sfc32State.b}} (local.get $state)))
    (local.set $c (i32.load offset={{sfc32State.c}} (local.get $state)))
    (local.set $d (i32.load offset={{sfc32State.d}} (local.get $state)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (local.set $t (i32.add (i32.add (local.get $a) (local.get $b)) (local.get $d)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $a (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 9))))
        (local.set $b (i32.add (local.get $c) (i32.shl (local.get $c) (i32.const 3))))
        (local.set $c (i32.add (i32.rotl (local.get $c) (i32.const 21)) (local.get $t)))
        (f64.store offset={{draw.0}} (local.get $out)
          (f64.mul (f64.convert_i32_u (local.get $t)) (f64.const 0x1p-32)))
        (local.set $t (i32.add (i32.add (local.get $a) (local.get $b)) (local.get $d)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $a (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 9))))
        (local.set $b (i32.add (local.get $c) (i32.shl (local.get $c) (i32.const 3))))
        (local.set $c (i32.add (i32.rotl (local.get $c) (i32.const 21)) (local.get $t)))
        (f64.store offset={{draw.1}} (local.get $out)
          (f64.mul (f64.convert_i32_u (local.get $t)) (f64.const 0x1p-32)))
        (local.set $t (i32.add (i32.add (local.get $a) (local.get $b)) (local.get $d)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $a (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 9))))
        (local.set $b (i32.add (local.get $c) (i32.shl (local.get $c) (i32.const 3))))
        (local.set $c (i32.add (i32.rotl (local.get $c) (i32.const 21)) (local.get $t)))
        (f64.store offset={{draw.2}} (local.get $out)
          (f64.mul (f64.convert_i32_u (local.get $t)) (f64.const 0x1p-32)))
        (local.set $t (i32.add (i32.add (local.get $a) (local.get $b)) (local.get $d)))
        (local.set $d (i32.add (local.get $d) (i32.const 1)))
        (local.set $a (i32.xor (local.get $b) (i32.shr_u (local.get $b) (i32.const 9))))
        (local.set $b (i32.add (local.get $c) (i32.shl (local.get $c) (i32.const 3))))
        (local.set $c (i32.add (i32.rotl (local.get $c) (i32.const 21)) (local.get $t)))
        (f64.store offset={{draw.3}} (local.get $out)
          (f64.mul (f64.convert_i32_u (local.get $t)) (f64.const 0x1p-32)))
        (local.set $out (i32.add (local.get $out) (i32.const 32)))
        (br $next)))
    (i32.store (local.get $state) (local.get $a))
    (i32.store offset={{sfc32State.b}} (local.get $state) (local.get $b))
    (i32.store offset={{sfc32State.c}} (local.get $state) (local.get $c))
    (i32.store offset={{sfc32State.d}} (local.get $state) (local.get $d))))
