import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { probePolicyModule } from '../../src/backend/workers/policy-probe.js';
import { ConfigError } from '../../src/errors.js';
import { linuxAsiDefaults } from '../../src/linux-asi/settings.js';
import {
  postedClassPolicies,
  taintGuestControl,
  taintKernelData,
  taintOtherMmControl,
  taintOtherMmData,
  taintUserData,
  userClassPolicy,
} from '../../src/linux-asi/taints.js';
import { linuxAsi } from '../../src/policy/linux-asi.js';
import { definePolicy } from '../../src/policy/policy.js';
import { loadPolicyModule } from '../../src/policy/policy-module.js';

/**
 * Today's Linux ASI settings through `--policy-module` (issue 22 item 6): a module's policy may carry
 * `linuxAsi` (sibling protocol, exitOn, STIBP, class taint policies); the one loader checks them, in
 * this thread and in the probe worker the CLI loads a module in, and a bad field exits 2 naming it.
 */
const fixtures = join(import.meta.dirname, '..', 'fixtures');
const userTaints = join(fixtures, 'linux-asi-user-taint-policy.mjs');
const plain = join(fixtures, 'linux-asi-plain-policy.mjs');
const bad = join(fixtures, 'linux-asi-bad-taint-policy.mjs');
const badField =
  /--policy-module .*linux-asi-bad-taint-policy\.mjs: policy\.linuxAsi\.classPolicies\.user\.preventControl\[0\]: the control taints .*each one of USER_CONTROL, GUEST_CONTROL, OTHER_MM_CONTROL.*\(got "KERNEL_DATA"\)/;
const cli = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');
const root = mkdtempSync(join(tmpdir(), 'asi-emu-linux-asi-module-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('definePolicy with linuxAsi settings', () => {
  it('fills the settings left out and runs the protocol it names (its hooks, its stun)', () => {
    const policy = definePolicy({ name: 'p', description: 'd', linuxAsi: { siblingProtocol: 'stun' } });
    expect(policy.linuxAsi).toEqual({ ...linuxAsiDefaults, siblingProtocol: 'stun' });
    expect(policy.stun).toBe(true);
    expect(policy.waitForSiblingsOut({} as never)).toBe(true);
    const none = definePolicy({ name: 'q', description: 'd', linuxAsi: { siblingProtocol: 'none' } });
    expect(none.kickBeforeFull({} as never)).toBe(false);
  });

  it('keeps the hooks a definition writes itself, and the other class at its posted policy', () => {
    const mine = () => false;
    const policy = definePolicy({
      name: 'p',
      description: 'd',
      mayEnter: mine,
      linuxAsi: { classPolicies: { user: { ...userClassPolicy, protectData: taintKernelData } } },
    });
    expect(policy.mayEnter).toBe(mine);
    expect(policy.kickBeforeFull).toBe(linuxAsi.kickBeforeFull);
    expect(policy.linuxAsi?.classPolicies.kvm).toBe(postedClassPolicies.kvm);
    expect(policy.linuxAsi?.classPolicies.user.protectData).toBe(taintKernelData);
  });
});

describe('a policy module with linuxAsi settings', () => {
  it('loads a linuxAsiPolicy with a user taint policy written by name (stun, mm-switch)', async () => {
    const { policy } = await loadPolicyModule(userTaints);
    expect(policy.name).toBe('user-linux-asi-taints');
    expect(policy.stun).toBe(true);
    expect(policy.linuxAsi).toMatchObject({ siblingProtocol: 'stun', exitOn: 'mm-switch', stibp: true });
    expect(policy.linuxAsi?.classPolicies.user).toEqual({
      ...userClassPolicy,
      protectData: userClassPolicy.protectData | taintUserData,
    });
    expect(policy.linuxAsi?.classPolicies.kvm).toEqual(postedClassPolicies.kvm);
  });

  it('loads a plain object (no asi-emu import): defaults filled in, kick-and-wait hooks', async () => {
    const { policy } = await loadPolicyModule(plain);
    expect(policy.linuxAsi?.siblingProtocol).toBe('kick-and-wait');
    expect(policy.linuxAsi?.classPolicies.user).toEqual({
      preventControl: taintOtherMmControl,
      protectData: taintKernelData | taintOtherMmData,
      set: userClassPolicy.set,
    });
    expect((policy.linuxAsi?.classPolicies.user.preventControl ?? -1) & taintGuestControl).toBe(0);
    expect(policy.kickBeforeFull({} as never)).toBe(true);
    expect(policy.waitForSiblingsOut({} as never)).toBe(true);
  });

  it('refuses a bad taint policy, naming the field and the accepted names', async () => {
    await expect(loadPolicyModule(bad)).rejects.toThrow(ConfigError);
    await expect(loadPolicyModule(bad)).rejects.toThrow(badField);
  });

  it('refuses it the same way through the probe worker (the CLI and workers backend path)', async () => {
    expect(existsSync(cli), 'run `npm run build` first').toBe(true);
    await expect(probePolicyModule(bad)).rejects.toThrow(badField);
    expect((await probePolicyModule(userTaints)).name).toBe('user-linux-asi-taints');
  });

  it('`asi-emu fuzz --policy-module` with the bad one exits 2 with one line naming the field', () => {
    const run = spawnSync(
      'node',
      [cli, 'fuzz', '--policy-module', bad, '--cases', '1', '--seed', '1', '--out', join(root, 'bad')],
      { encoding: 'utf8' },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(badField);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });
});
