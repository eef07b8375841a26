import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  defineTaintPolicy,
  parseLinuxAsiSettingsInput,
  parseTaintPolicy,
} from '../../src/linux-asi/settings-input.js';
import {
  kvmClassPolicy,
  taintGuestControl,
  taintKernelData,
  taintOtherMmControl,
  taintOtherMmData,
  taintUserControl,
  taintUserData,
  userClassPolicy,
} from '../../src/linux-asi/taints.js';

/** defineTaintPolicy and the `linuxAsi` checks a policy module goes through (issue 22 item 6). */
describe('defineTaintPolicy: a class policy written with taint names', () => {
  it('gives the TaintPolicy the state machine uses: the posted user class, by name', () => {
    const policy = defineTaintPolicy({
      preventControl: ['GUEST_CONTROL', 'OTHER_MM_CONTROL'],
      protectData: ['KERNEL_DATA', 'OTHER_MM_DATA'],
      set: ['USER_CONTROL', 'USER_DATA'],
    });
    expect(policy).toEqual(userClassPolicy);
    expect(Object.isFrozen(policy)).toBe(true);
  });

  it('takes one name, an empty set, or the masks a TaintPolicy holds', () => {
    expect(
      defineTaintPolicy({ preventControl: 'OTHER_MM_CONTROL', protectData: 'KERNEL_DATA', set: [] }),
    ).toEqual({
      preventControl: taintOtherMmControl,
      protectData: taintKernelData,
      set: 0,
    });
    expect(parseTaintPolicy({ ...kvmClassPolicy }, 'p')).toEqual(kvmClassPolicy);
    expect(
      defineTaintPolicy({
        preventControl: ['USER_CONTROL', 'GUEST_CONTROL'],
        protectData: ['USER_DATA', 'OTHER_MM_DATA'],
        set: taintUserControl | taintUserData,
      }),
    ).toEqual({
      preventControl: taintUserControl | taintGuestControl,
      protectData: taintUserData | taintOtherMmData,
      set: taintUserControl | taintUserData,
    });
  });

  const refusals: [string, unknown, RegExp][] = [
    [
      'a data taint in preventControl',
      { preventControl: ['KERNEL_DATA'], protectData: ['KERNEL_DATA'], set: [] },
      /^taint policy\.preventControl\[0\]: the control taints .*: a list of taint names, each one of USER_CONTROL, GUEST_CONTROL, OTHER_MM_CONTROL, naming at least one of USER_CONTROL, GUEST_CONTROL, OTHER_MM_CONTROL \(got "KERNEL_DATA"\)$/,
    ],
    [
      'a misspelt name',
      { preventControl: ['GUEST_CONTROL'], protectData: ['KERNEL_DTA'], set: [] },
      /^taint policy\.protectData\[0\]: .*each one of KERNEL_DATA, USER_DATA, GUEST_DATA, OTHER_MM_DATA.* \(got "KERNEL_DTA"\)$/,
    ],
    [
      'no control taint',
      { preventControl: [], protectData: ['KERNEL_DATA'], set: [] },
      /^taint policy\.preventControl: .*naming at least one of/,
    ],
    [
      'GUEST_DATA alone (outside ASI_TAINTS_DATA_MASK)',
      { preventControl: ['GUEST_CONTROL'], protectData: ['GUEST_DATA'], set: [] },
      /^taint policy\.protectData: .*naming at least one of KERNEL_DATA, USER_DATA, OTHER_MM_DATA/,
    ],
    [
      'a missing field',
      { preventControl: ['GUEST_CONTROL'], protectData: ['KERNEL_DATA'] },
      /^taint policy\.set: the taints entering the class sets .*\(required\)$/,
    ],
    [
      'an unknown field',
      { preventControl: ['GUEST_CONTROL'], protectData: ['KERNEL_DATA'], set: [], flush: true },
      /^taint policy\.flush: a taint policy field: one of preventControl, protectData, set/,
    ],
    [
      'a mask with bits of another kind',
      { preventControl: taintKernelData, protectData: ['KERNEL_DATA'], set: [] },
      /^taint policy\.preventControl: .*\(or their bit mask\) \(got 1\)$/,
    ],
    [
      'a mask past 32 bits (which a 32-bit & would truncate to a valid one)',
      { preventControl: ['GUEST_CONTROL'], protectData: ['KERNEL_DATA'], set: 2 ** 32 },
      /^taint policy\.set: .*\(or their bit mask\) \(got 4294967296\)$/,
    ],
  ];
  for (const [what, input, message] of refusals) {
    it(`refuses ${what}, naming the field and the accepted names`, () => {
      expect(() => defineTaintPolicy(input as never)).toThrow(ConfigError);
      expect(() => defineTaintPolicy(input as never)).toThrow(message);
    });
  }
});

describe('a linuxAsi settings object from a policy module', () => {
  it('checks each field and turns class policies written with names into masks', () => {
    const parsed = parseLinuxAsiSettingsInput(
      {
        siblingProtocol: 'stun',
        exitOn: 'mm-switch',
        stibp: true,
        classPolicies: {
          user: {
            preventControl: ['GUEST_CONTROL', 'OTHER_MM_CONTROL'],
            protectData: ['KERNEL_DATA', 'OTHER_MM_DATA'],
            set: ['USER_CONTROL', 'USER_DATA'],
          },
        },
      },
      'm',
    );
    expect(parsed).toEqual({
      siblingProtocol: 'stun',
      exitOn: 'mm-switch',
      stibp: true,
      classPolicies: { user: userClassPolicy },
    });
  });

  const refusals: [string, unknown, RegExp][] = [
    [
      'a protocol it does not know',
      { siblingProtocol: 'kick' },
      /^m\.siblingProtocol: one of "kick-and-wait", "ipi-only", "stun", "none" \(got "kick"\)$/,
    ],
    ['an exitOn it does not know', { exitOn: 'never' }, /^m\.exitOn: one of "every-switch", "mm-switch"/],
    ['a stibp that is not a boolean', { stibp: 'yes' }, /^m\.stibp: one of true, false/],
    [
      'an unknown setting',
      { ephemeral: true },
      /^m\.ephemeral: a linux-asi setting: one of siblingProtocol, exitOn, stibp, classPolicies, plantedFaults, ephmap, cpuBugs, ibpbOnExit/,
    ],
    [
      'a class it does not know',
      { classPolicies: { vmm: {} } },
      /^m\.classPolicies\.vmm: an ASI class: one of kvm, user/,
    ],
    [
      'a bad class policy',
      { classPolicies: { kvm: { preventControl: 'GUEST', protectData: [], set: [] } } },
      /^m\.classPolicies\.kvm\.preventControl: .* \(got "GUEST"\)$/,
    ],
    [
      'an unknown planted fault',
      { plantedFaults: ['skip-everything'] },
      /^m\.plantedFaults\[0\]: a list of planted faults/,
    ],
    ['an ephmap that is not a boolean', { ephmap: 1 }, /^m\.ephmap: one of true, false \(got 1\)$/],
    ['an ibpbOnExit that is not a boolean', { ibpbOnExit: 'retbleed' }, /^m\.ibpbOnExit: one of true, false/],
    [
      'CPU bugs it does not know',
      { cpuBugs: { l1tf: true, mds: false, retbleed: true } },
      /^m\.cpuBugs\.retbleed: the CPU's bugs: \{ l1tf: boolean, mds: boolean \}/,
    ],
    [
      'a CPU bug that is not a boolean',
      { cpuBugs: { l1tf: 'yes', mds: false } },
      /^m\.cpuBugs\.l1tf: the CPU's bugs/,
    ],
    ['CPU bugs that are not an object', { cpuBugs: 'spr' }, /^m\.cpuBugs: the CPU's bugs/],
    ['settings that are not an object', 'stun', /^m: today's Linux ASI settings: an object of/],
  ];
  for (const [what, input, message] of refusals) {
    it(`refuses ${what}`, () => {
      expect(() => parseLinuxAsiSettingsInput(input, 'm')).toThrow(message);
    });
  }
});
