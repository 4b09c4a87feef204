// The official openai client against a running `mlxd serve`: models.list, chat completions with and without
// streaming (also through the client's .stream() helper), text completions, n > 1, error cases, and
// embeddings.
// Usage: node openai_client.mjs BASE_URL MODEL_ID   (exits non-zero on the first failed check)
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { assertRequestErrors, assertStreamMatches } from './chat_checks.mjs';

const [baseURL, modelId] = process.argv.slice(2);
const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'unused', maxRetries: 0 });
const messages = [{ role: 'user', content: 'hello' }];

const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), [modelId]);
console.log('models.list ok');

const whole = await client.chat.completions.create({ model: modelId, messages, max_tokens: 16, seed: 7, temperature: 0.9 });
assert.equal(whole.object, 'chat.completion');
assert.match(whole.id, /^chatcmpl-/);
assert.equal(whole.model, modelId);
assert.equal(whole.choices.length, 1);
assert.equal(whole.choices[0].message.role, 'assistant');
assert.equal(typeof whole.choices[0].message.content, 'string');
assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
assert.ok(whole.usage.completion_tokens >= 1 && whole.usage.completion_tokens <= 16);
assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + whole.usage.completion_tokens);
console.log('chat.completions.create ok');

const stream = await client.chat.completions.create({
  model: modelId, messages, max_tokens: 16, seed: 7, temperature: 0.9, stream: true,
  stream_options: { include_usage: true },
});
await assertStreamMatches(stream, whole);
console.log('chat.completions.create stream ok');

// The .stream() helper rebuilds the final message from the chunks.
const helper = client.chat.completions.stream({ model: modelId, messages, max_tokens: 16, seed: 7, temperature: 0.9 });
const final = await helper.finalChatCompletion();
assert.equal(final.choices[0].message.content, whole.choices[0].message.content);
console.log('chat.completions.stream ok');

const several = await client.chat.completions.create({ model: modelId, messages, max_tokens: 8, seed: 7, n: 3 });
assert.deepEqual(several.choices.map((c) => c.index), [0, 1, 2]);
console.log('n > 1 ok');

const completion = await client.completions.create({ model: modelId, prompt: 'hello', max_tokens: 8, seed: 3 });
assert.equal(completion.object, 'text_completion');
assert.equal(typeof completion.choices[0].text, 'string');
assert.equal(completion.usage.prompt_tokens, 1);
let streamedText = '';
for await (const chunk of await client.completions.create({ model: modelId, prompt: 'hello', max_tokens: 8, seed: 3, stream: true }))
  for (const c of chunk.choices) streamedText += c.text;
assert.equal(streamedText, completion.choices[0].text);
console.log('completions.create ok');

await assertRequestErrors(client, modelId, messages);
console.log('errors ok');

// Embeddings: the client asks for base64 unless told otherwise and decodes it; both forms agree, vectors have
// unit length, and a batch gives each input the vector it gets alone.
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const asFloat = await client.embeddings.create({ model: modelId, input: 'hello world', encoding_format: 'float' });
const asDefault = await client.embeddings.create({ model: modelId, input: 'hello world' });
assert.equal(asFloat.object, 'list');
assert.equal(asFloat.model, modelId);
assert.equal(asFloat.data[0].object, 'embedding');
assert.ok(asFloat.data[0].embedding.length > 0);
assert.ok(Math.abs(norm(asFloat.data[0].embedding) - 1) < 1e-5);
assert.deepEqual(asDefault.data[0].embedding, asFloat.data[0].embedding);
assert.equal(asFloat.usage.prompt_tokens, asFloat.usage.total_tokens);
assert.ok(asFloat.usage.prompt_tokens >= 2);
const batch = await client.embeddings.create({ model: modelId, input: ['abc', 'hello world'], encoding_format: 'float' });
assert.deepEqual(batch.data.map((d) => d.index), [0, 1]);
assert.deepEqual(batch.data[1].embedding, asFloat.data[0].embedding);
await assert.rejects(
  client.embeddings.create({ model: modelId, input: [] }),
  (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'input',
);
console.log('embeddings.create ok');
console.log('openai client: all checks passed');
