// The official openai client against two servers of the same model: one running it whole, one running its
// layers on workers (`mlxd serve --workers`). Every answer (greedy and seeded, whole and streamed, chat and
// text) must be the same, errors must have the same shape, and embeddings the same values.
// Usage: node openai_cluster.mjs LOCAL_URL CLUSTER_URL MODEL_ID   (exits non-zero on the first failed check)
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { assertRequestErrors, assertStreamMatches } from './chat_checks.mjs';

const [localURL, clusterURL, modelId] = process.argv.slice(2);
const local = new OpenAI({ baseURL: localURL + '/v1', apiKey: 'unused', maxRetries: 0 });
const cluster = new OpenAI({ baseURL: clusterURL + '/v1', apiKey: 'unused', maxRetries: 0 });
const messages = [{ role: 'user', content: 'hello' }];

assert.deepEqual((await cluster.models.list()).data.map((m) => m.id), [modelId]);
console.log('models.list ok');

const contentOf = (r) => r.choices.map((c) => [c.message.content, c.finish_reason]);
// Equal, but floats (logprobs) only within 1e-4: the two servers batch their matrix products differently, so
// the same logits can differ in the last bit (the chosen tokens do not).
const assertClose = (a, b, path = '') => {
  if (typeof a === 'number' && typeof b === 'number' && !(Number.isInteger(a) && Number.isInteger(b))) {
    assert.ok(Math.abs(a - b) < 1e-4, `${path}: ${a} vs ${b}`);
  } else if (a && b && typeof a === 'object' && typeof b === 'object') {
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort(), path);
    for (const k of Object.keys(a)) assertClose(a[k], b[k], `${path}.${k}`);
  } else {
    assert.deepEqual(a, b, path);
  }
};
for (const params of [
  { max_tokens: 24, temperature: 0 },
  { max_tokens: 16, temperature: 0.9, seed: 7 },
  { max_tokens: 8, temperature: 0.9, seed: 3, n: 3 },
  { max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 2 },
]) {
  const a = await local.chat.completions.create({ model: modelId, messages, ...params });
  const b = await cluster.chat.completions.create({ model: modelId, messages, ...params });
  assert.deepEqual(contentOf(b), contentOf(a));
  assert.deepEqual(b.usage, a.usage);
  assertClose(b.choices.map((c) => c.logprobs), a.choices.map((c) => c.logprobs), 'logprobs');
}
console.log('chat.completions.create ok');

const whole = await local.chat.completions.create({ model: modelId, messages, max_tokens: 30, temperature: 0 });
await assertStreamMatches(await cluster.chat.completions.create({
  model: modelId, messages, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true },
}), whole);
const helper = cluster.chat.completions.stream({ model: modelId, messages, max_tokens: 30, temperature: 0 });
assert.equal((await helper.finalChatCompletion()).choices[0].message.content, whole.choices[0].message.content);
console.log('chat.completions.create stream ok');

const completion = { model: modelId, prompt: 'once upon a time', max_tokens: 20, temperature: 0 };
const a = await local.completions.create(completion);
const b = await cluster.completions.create(completion);
assert.equal(b.choices[0].text, a.choices[0].text);
assert.deepEqual(b.usage, a.usage);
let streamed = '';
for await (const chunk of await cluster.completions.create({ ...completion, stream: true }))
  for (const c of chunk.choices) streamed += c.text;
assert.equal(streamed, a.choices[0].text);
console.log('completions.create ok');

await assertRequestErrors(cluster, modelId, messages);
console.log('errors ok');

// Embeddings come from the last stage's hidden states: the same vectors to 1e-5 (base64, the client's default).
const input = ['hello world', 'in the beginning'];
const ea = await local.embeddings.create({ model: modelId, input });
const eb = await cluster.embeddings.create({ model: modelId, input });
assert.deepEqual(eb.usage, ea.usage);
assert.equal(eb.data.length, 2);
eb.data.forEach((d, i) => assertClose(Array.from(d.embedding), Array.from(ea.data[i].embedding), `embedding ${i}`));
console.log('embeddings.create ok');
console.log('openai cluster client: all checks passed');
