// The chat page of `mlxd serve --workers` in headless Chromium: the cluster view lists both workers (address,
// layers, up, sequences) from /health; after this script kills the second worker (by its process id) the view
// shows it down and the plan moved to the survivor, with no request in between. Saves a screenshot.
// Usage: node cluster_page.mjs BASE_URL WORKER_A WORKER_B WORKER_B_PID SCREENSHOT.png
import assert from 'node:assert/strict';
import { launchChromium, waitForRows } from './chromium_page.mjs';

const [baseURL, workerA, workerB, pidB, screenshot] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(baseURL + '/');
  await waitForRows(page, [
    [workerA, '0-0 (embedding)', 'up', '0'],
    [workerB, '1-1 (head)', 'up', '0'],
  ]);
  assert.match(await page.textContent('#cluster_status'), /^cluster: ok · plan /);
  process.kill(Number(pidB), 'SIGKILL');
  // The down worker has no layers; the survivor holds them all after the re-plan.
  await waitForRows(page, [
    [workerA, '0-1 (embedding, head)', 'up', '0'],
    [workerB, '-', 'down', '-'],
  ]);
  const status = await page.textContent('#cluster_status');
  assert.ok(status.startsWith('cluster: degraded · plan ' + workerA + ' 0-1'), status);
  assert.ok(status.endsWith(' · 1 re-plan'), status);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log('cluster page: 2 workers shown, then ' + workerB + ' down; screenshot ' + screenshot);
} finally {
  await browser.close();
}
