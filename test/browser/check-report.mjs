/**
 * Opens the demo's report in headless Chromium (Debian's `chromium`) and checks
 * what a reader's browser would show: the page loads with no console error and
 * without a single network request, and every chart (each <svg
 * data-experiment>) renders with a non-zero size. Then takes the screenshot
 * that becomes demo/report.png.
 *
 *   node test/browser/check-report.mjs <report.html> [screenshot.png]
 *
 * No npm package needed: Chromium loads the report in an iframe of a small
 * harness page whose script measures the charts (file:// pages may read each
 * other with --allow-file-access-from-files) and writes the result into its
 * DOM, which --dump-dom prints. Console messages go to Chromium's log
 * (--enable-logging=stderr), every request to a net log (--log-net-log).
 * The report itself has no script: the harness is the only one.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [reportArg, shotArg] = process.argv.slice(2);
if (!reportArg) {
  console.error('usage: node test/browser/check-report.mjs <report.html> [screenshot.png]');
  process.exit(2);
}
const report = resolve(reportArg);
const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find((c) => spawnSync(c, ['--version']).status === 0);
if (!chromium) {
  console.error('no chromium: apt-get install -y chromium');
  process.exit(2);
}
const work = mkdtempSync(join(tmpdir(), 'batchnorm-browser-'));
const failures = [];
try {
  // The report is copied beside the harness so that the iframe is a sibling file.
  copyFileSync(report, join(work, 'report.html'));
  writeFileSync(
    join(work, 'harness.html'),
    `<!doctype html><meta charset="utf-8"><body><pre id="out">pending</pre>
<iframe id="f" src="report.html" style="width:1100px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {
  const doc = document.getElementById('f').contentDocument;
  const charts = [...doc.querySelectorAll('svg[data-experiment]')].map((s) => {
    const r = s.getBoundingClientRect();
    return { experiment: s.getAttribute('data-experiment'), width: r.width, height: r.height, shapes: s.querySelectorAll('path,rect,circle,line').length };
  });
  // Everything the report fetched after its own HTML: images, fonts, stylesheets, anything.
  const resources = document.getElementById('f').contentWindow.performance.getEntriesByType('resource').map((e) => e.name);
  document.getElementById('out').textContent = 'RESULT ' + JSON.stringify({ title: doc.title, sections: doc.querySelectorAll('section').length, charts, resources });
});
</script>`,
  );
  const common = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-default-apps',
    '--disable-extensions',
    '--allow-file-access-from-files',
    // Nothing leaves the machine, whatever asks: every host name fails to resolve.
    '--host-resolver-rules=MAP * ~NOTFOUND',
    '--virtual-time-budget=10000',
  ];
  const netLog = join(work, 'net.json');
  const dom = spawnSync(
    chromium,
    [
      ...common,
      `--user-data-dir=${join(work, 'profile-dom')}`,
      '--enable-logging=stderr',
      '--v=0',
      `--log-net-log=${netLog}`,
      '--dump-dom',
      pathToFileURL(join(work, 'harness.html')).href,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (dom.status !== 0) failures.push(`chromium --dump-dom exited with ${dom.status}: ${dom.stderr.slice(-2000)}`);
  const m = /RESULT (\{.*\})/.exec(dom.stdout);
  if (!m) failures.push(`the harness did not report (the page did not load?): ${dom.stdout.slice(0, 500)}`);
  else {
    const r = JSON.parse(
      m[1]
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, '&')
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>'),
    );
    console.log(`"${r.title}": ${r.sections} sections, ${r.charts.length} charts`);
    if (r.charts.length === 0) failures.push('no chart (svg[data-experiment]) in the report');
    console.log(`resources the report fetched: ${r.resources.length === 0 ? 'none' : r.resources.join(', ')}`);
    for (const u of r.resources) failures.push(`the report fetched ${u}`);
    for (const c of r.charts) {
      const ok = c.width > 100 && c.height > 20 && c.shapes > 3;
      console.log(`  chart of experiment ${c.experiment}: ${c.width.toFixed(0)} × ${c.height.toFixed(0)} px, ${c.shapes} shapes${ok ? '' : '  <-- FAIL'}`);
      if (!ok) failures.push(`the chart of experiment ${c.experiment} renders at ${c.width} × ${c.height} px with ${c.shapes} shapes`);
    }
  }
  // Console messages of the page (Chromium logs them as "CONSOLE(line)" or ":INFO:CONSOLE").
  const consoleLines = dom.stderr.split('\n').filter((l) => /CONSOLE/.test(l) && /report\.html|harness\.html/.test(l));
  for (const l of consoleLines) failures.push(`console: ${l}`);
  // Every URL Chromium requested, from the net log. The browser's own services
  // (component updater, clock, sign-in) ask Google's hosts whatever the page
  // does, and fail to resolve here; any other remote URL must have come from
  // the page.
  const urls = new Set([...readFileSync(netLog, 'utf8').matchAll(/"(?:url|original_url)":"([^"]+)"/g)].map((u) => u[1]));
  const remote = [...urls].filter((u) => !/^(file|data|about|chrome|chrome-extension|blob):/.test(u));
  const browserOwn = /^https?:\/\/(clients\d*\.google\.com|accounts\.google\.com|update\.googleapis\.com|redirector\.gvt1\.com)\//;
  console.log(`requests in the net log: ${remote.length} remote, ${remote.filter((u) => browserOwn.test(u)).length} of them Chromium's own services`);
  for (const u of remote.filter((u) => !browserOwn.test(u))) failures.push(`network request: ${u}`);

  if (shotArg) {
    // The README's picture: the top of the report at a reader's window width.
    const shot = spawnSync(
      chromium,
      [
        ...common,
        `--user-data-dir=${join(work, 'profile-shot')}`,
        '--hide-scrollbars',
        '--window-size=1100,1400',
        `--screenshot=${resolve(shotArg)}`,
        pathToFileURL(join(work, 'report.html')).href,
      ],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    if (shot.status !== 0) failures.push(`chromium --screenshot exited with ${shot.status}: ${shot.stderr.slice(-1000)}`);
    else console.log(`screenshot: ${resolve(shotArg)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (failures.length) {
  console.error(`\n${failures.length} problem(s):\n${failures.map((f) => `  - ${f}`).join('\n')}`);
  process.exit(1);
}
console.log('report OK in headless Chromium');
