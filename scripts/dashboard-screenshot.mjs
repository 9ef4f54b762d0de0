// Screenshot of a running dashboard, for the README: node scripts/dashboard-screenshot.mjs <url> <out.png>
// e.g. node scripts/dashboard-screenshot.mjs 'http://127.0.0.1:8080/#run=3' docs/dashboard.png
// Needs Debian's chromium (/usr/bin/chromium, or CHROMIUM_PATH). Waits until the workers are listed
// and the selected run's report (a finished benchmark's) shows its timeline.
import { chromium } from 'playwright-core';

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node scripts/dashboard-screenshot.mjs <dashboard url> <out.png>');
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  await page.goto(url, { timeout: 30_000 });
  await page.waitForSelector('#workers tbody tr', { timeout: 30_000 });
  // The selected run (the newest, or #run=<id>) must be a finished benchmark: its report and its timeline, decoded.
  await page.waitForFunction(() => {
    const img = document.querySelector('#timeline');
    return document.querySelector('#report')?.hidden === false && document.querySelector('#timeline-figure')?.hidden === false && img?.complete && img.naturalWidth > 0;
  }, undefined, { timeout: 60_000 });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
