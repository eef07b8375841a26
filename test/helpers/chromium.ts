import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Headless Chromium for the report tests: a page rendered as a browser lays it out. Tests that need
 * it skip themselves where it is missing (`it.skipIf(!hasChromium)`; apt-get install -y chromium).
 */
export const chromium = '/usr/bin/chromium';
export const hasChromium = existsSync(chromium);

const chromiumFlags = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // A report must need no network: make every host lookup fail.
  '--host-resolver-rules=MAP * ~NOTFOUND',
];

/** Where a page and the browser's profile go: two fresh directories the caller removes. */
export interface BrowserDirectories {
  directory: string;
  profile: string;
}

/**
 * Runs `body` (JavaScript: statements ending in a `return` of JSON-able data) in `html` as Chromium
 * laid it out, and returns what it returned. The reports have no scripts and their CSP forbids them,
 * so the measuring copy allows inline script and appends one; the page is otherwise unchanged.
 */
export function measureInChromium<T>(html: string, body: string, where: BrowserDirectories): T {
  const measure = `<script>
    const measured = (() => { ${body} })();
    const pre = document.createElement('pre');
    pre.id = 'render-check';
    pre.textContent = JSON.stringify(measured);
    document.body.append(pre);
  </script></body>`;
  const csp = `default-src 'none'; style-src 'unsafe-inline'`;
  if (!html.includes(csp)) throw new Error("the page has the reports' Content-Security-Policy");
  const measuring = html.replace(csp, `${csp}; script-src 'unsafe-inline'`).replace('</body>', measure);
  const page = join(where.directory, 'measure.html');
  writeFileSync(page, measuring);
  const dom = execFileSync(
    chromium,
    [...chromiumFlags, `--user-data-dir=${where.profile}`, '--dump-dom', `file://${page}`],
    { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const json = /<pre id="render-check">([\s\S]*?)<\/pre>/.exec(dom)?.[1];
  if (json === undefined) throw new Error('the measuring script did not run');
  return JSON.parse(json.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&')) as T;
}

/** A PNG screenshot of `html` (unchanged) at `width` x `height`, written under `where.directory`. */
export function screenshotInChromium(
  html: string,
  where: BrowserDirectories,
  width: number,
  height: number,
): string {
  const page = join(where.directory, 'report.html');
  writeFileSync(page, html);
  const screenshot = join(where.directory, 'report.png');
  execFileSync(
    chromium,
    [
      ...chromiumFlags,
      `--user-data-dir=${where.profile}`,
      `--window-size=${width},${height}`,
      `--screenshot=${screenshot}`,
      `file://${page}`,
    ],
    { timeout: 60_000, stdio: 'ignore' },
  );
  return screenshot;
}
