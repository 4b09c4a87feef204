// What the page scripts share: Debian's headless Chromium, and reading the chat page's cluster view.
import { chromium } from 'playwright-core';

// Debian's chromium, headless and quiet (no background traffic to other hosts).
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// The rows of the cluster view, each as its cells' text: [address, layers, status, sequences].
export function nodeRows(page) {
  return page.$$eval('#nodes tr.node', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
}

// Waits until the cluster view shows `expected` (as nodeRows reads it; the page refreshes it every 2 s);
// throws with what it showed last after `timeoutMs`.
export async function waitForRows(page, expected, timeoutMs = 15000) {
  const want = JSON.stringify(expected);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await nodeRows(page);
    if (JSON.stringify(rows) === want) return;
    if (Date.now() > deadline) throw new Error('the cluster view shows ' + JSON.stringify(rows) + ', not ' + want);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
