// The chat page in headless Chromium (Debian's, driven by playwright-core): type a message, see a streamed
// answer appear, read the model name, tokens/s and the cluster view (this server as the one node), and save a
// screenshot as the test's artifact.
// Usage: node chat_page.mjs BASE_URL MODEL_ID SCREENSHOT.png   (exits non-zero on the first failed check)
import assert from 'node:assert/strict';
import { launchChromium, waitForRows } from './chromium_page.mjs';

const [baseURL, modelId, screenshot] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const failed = [];
  page.on('requestfailed', (r) => failed.push(r.url()));
  await page.goto(baseURL + '/');
  await page.waitForFunction((id) => document.getElementById('model').textContent === id, modelId);
  // Greedy: at the page's 0.7 a random model's first token was sometimes its end of sequence (one CI run in
  // about forty streamed nothing).
  await page.fill('#temperature', '0');
  await page.fill('#max_tokens', '24');
  await page.fill('#input', 'hello there');
  await page.press('#input', 'Enter');
  await page.waitForSelector('.msg.assistant[data-state="done"]', { timeout: 30000 });
  assert.equal(await page.textContent('.msg.user'), 'hello there');
  const answer = await page.textContent('.msg.assistant');
  assert.ok(answer.length > 0, 'the answer is empty');
  assert.match(await page.textContent('#speed'), /^[0-9.]+ tokens\/s$/);
  assert.equal(await page.isDisabled('#stop'), true);
  await waitForRows(page, [[new URL(baseURL).host, '0-1 (embedding, head)', 'up', '0']]);
  assert.match(await page.textContent('#cluster_status'), /^single node: ok$/);
  assert.deepEqual(failed, []);  // no request left the page unanswered (and none went to another host)
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log('chat page: answer of ' + answer.length + ' characters streamed; screenshot ' + screenshot);
} finally {
  await browser.close();
}
