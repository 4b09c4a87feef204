// The reference side of the tokenizer benchmark: @huggingface/tokenizers (the tokenizer of transformers.js)
// encoding the same corpus and the same space-free words as tokenizer_bench.cpp. Prints one JSON object.
// Usage: node reference_encode.mjs NODE_MODULES_DIR TOKENIZER_DIR CORPUS_FILE ROUNDS
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [modules, tokenizerDir, corpusFile, roundsText] = process.argv.slice(2);
const require = createRequire(path.join(modules, "package.json"));
const { Tokenizer } = require("@huggingface/tokenizers");
const json = JSON.parse(fs.readFileSync(path.join(tokenizerDir, "tokenizer.json"), "utf8"));
const configFile = path.join(tokenizerDir, "tokenizer_config.json");
const config = fs.existsSync(configFile) ? JSON.parse(fs.readFileSync(configFile, "utf8")) : {};
const tok = new Tokenizer(json, config);
const corpus = fs.readFileSync(corpusFile, "utf8");

const encode = (text) => tok.encode(text, { add_special_tokens: false }).ids;
let best = Infinity;
let ids = [];
for (let r = 0; r < Number(roundsText); ++r) {
  const start = process.hrtime.bigint();
  ids = encode(corpus);
  best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
}
let h = 1469598103934665603n;
for (const id of ids) {
  h ^= BigInt(id >>> 0);
  h = (h * 1099511628211n) & 0xffffffffffffffffn;
}
const words = [];
for (const n of [1 << 14, 1 << 16, 1 << 18]) {
  const start = process.hrtime.bigint();
  const wordIds = encode("a".repeat(n));
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  words.push({ bytes: n, seconds: s, ns_per_byte: (s * 1e9) / n, tokens: wordIds.length });
  if (s > 10) break;  // longer words would take minutes if the growth is quadratic
}
const bytes = Buffer.byteLength(corpus, "utf8");
console.log(JSON.stringify({ bytes, tokens: ids.length, ids_hash: h.toString(), seconds: best, mb_per_s: bytes / best / 1e6, words }));
