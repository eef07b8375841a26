import type { MachineSummary } from '../machine.js';

/** Fixed-width text table: first column left-aligned, the rest right-aligned. */
export function formatTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)));
  const line = (row: string[]) =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])))
      .join('  ');
  return [
    line(header),
    widths.map((width) => '-'.repeat(width)).join('  '),
    ...cells.slice(1).map(line),
  ].join('\n');
}

/** What the model built, for a person. */
export function formatMachineSummary(summary: MachineSummary): string {
  const lines: string[] = [];
  const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  lines.push(
    `machine: ${summary.cores} cores x ${summary.smt} threads = ${summary.threads} hyperthreads; ` +
      `${summary.frames} frames of 4 KiB; shared buffer ${mib(summary.bufferBytes)}`,
  );
  summary.vms.forEach((vm, vmId) => {
    lines.push(
      `vm:${vmId}: ${vm.vcpus} vCPUs pinned to hyperthreads ${vm.pinnedTo.join(',')}; ${vm.guestMemoryMiB} MiB guest memory`,
    );
  });
  lines.push(
    `L1D per core: ${summary.l1d.sets} sets x ${summary.l1d.ways} ways (${summary.l1d.bytes / 1024} KiB, ${summary.l1d.replacement}); ` +
      `TLB ${summary.tlbEntries} entries per thread, PCID ${summary.pcid ? 'on' : 'off'}`,
  );
  lines.push('');
  lines.push(
    formatTable(
      ['owner', 'frames'],
      Object.entries(summary.framesByOwner).map(([owner, frames]) => [owner, frames]),
    ),
  );
  lines.push('');
  lines.push(
    formatTable(
      ['address space', 'mapped pages', 'ranges', 'table pages'],
      summary.addressSpaces.map((space) => [space.name, space.mappedPages, space.ranges, space.tablePages]),
    ),
  );
  lines.push(`page-table pool: ${summary.pageTablePagesUsed} of ${summary.pageTablePoolPages} pages used`);
  lines.push('');
  lines.push(
    formatTable(
      ['region', 'owner', 'first pfn', 'frames', 'in kvm:N'],
      summary.regions.map((region) => [
        region.name,
        region.owner,
        region.firstPfn,
        region.frames,
        region.inKvmAddressSpace ? 'yes' : 'no',
      ]),
    ),
  );
  return lines.join('\n');
}
