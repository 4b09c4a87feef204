// Encodes texts with @huggingface/tokenizers and a tokenizer folder that `mlxd tokenizer train` wrote, for
// the trainer's reference test. Usage: node encode_trained.mjs TOKENIZER_DIR INPUTS.json OUT.json
// INPUTS.json is a list of strings; OUT.json gets, per input, the ids with and without special tokens and the
// decoded text. Run from the folder where setup_reference.sh installed package-lock.json.
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [dir, inputs, out] = process.argv.slice(2);
const tok = new Tokenizer(
  JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
  JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
);
const texts = JSON.parse(fs.readFileSync(inputs, "utf8"));
const results = texts.map((text) => {
  const ids = tok.encode(text).ids;
  const plain = tok.encode(text, { add_special_tokens: false }).ids;
  return { ids, plain, decoded: plain.length === 0 ? "" : tok.decode(plain) };
});
fs.writeFileSync(out, JSON.stringify(results));
