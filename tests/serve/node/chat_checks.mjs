// Checks shared by the openai client scripts: reading a streamed chat completion, and the error shapes every
// server (single node or over workers) must give.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

// The role, text, finish reason and usage that the chunks of a streamed chat completion add up to.
export async function readChatStream(stream) {
  const out = { role: null, text: '', finish: null, usage: null };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) out.role = c.delta.role;
      if (c.delta.content) out.text += c.delta.content;
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

// A streamed chat completion must say what `whole` (the same request without streaming) says.
export async function assertStreamMatches(stream, whole) {
  const s = await readChatStream(stream);
  assert.equal(s.role, 'assistant');
  assert.equal(s.text, whole.choices[0].message.content);
  assert.equal(s.finish, whole.choices[0].finish_reason);
  assert.deepEqual(s.usage, whole.usage);
}

// An out-of-range temperature is a 400 naming the field; an unknown model a 404 model_not_found.
export async function assertRequestErrors(client, modelId, messages) {
  await assert.rejects(
    client.chat.completions.create({ model: modelId, messages, temperature: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
  );
}
