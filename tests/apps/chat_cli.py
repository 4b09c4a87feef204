#!/usr/bin/python3
"""`mlxd chat` run as a user runs it, with its replies checked against `mlxd generate`.

Two user turns are piped in with a fixed seed: the first reply must be `generate --chat` of the first line, the
second `generate --tokens` of the whole conversation rendered by `mlxd chat-template` (same seed, same stop ids),
and the second must reuse the first turn's KV cache.
Also: /reset forgets the history, /exit and end of input end with status 0, piped output has no prompt marker,
and a model whose tokenizer has no chat template is refused by name.
Usage: chat_cli.py MLXD MODEL_DIR WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys

mlxd, model, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
sampling = ["--temperature", "0.9", "--top-p", "0.95", "--seed", "7", "--max-tokens", "12"]
first_line, second_line = "In the beginning", "And God said"


def run(args, stdin=None, status=0):
    p = subprocess.run([mlxd] + args, input=stdin, capture_output=True, text=True, timeout=120)
    if p.returncode != status:
        sys.exit(f"mlxd {' '.join(args)}: status {p.returncode}, wanted {status}\n{p.stdout}\n{p.stderr}")
    return p


def chat(lines, extra=()):
    return run(["chat", "--model", model] + sampling + list(extra), stdin="".join(l + "\n" for l in lines)).stdout


def generate_chat(user):
    return json.loads(run(["generate", "--model", model, "--chat", "--prompt", user, "--json"] + sampling).stdout)


def generate_conversation(messages):
    """The tokens `generate --tokens` gives for the conversation rendered by `chat-template`."""
    path = os.path.join(work, "messages.json")
    with open(path, "w") as f:
        json.dump(messages, f)
    text_path = os.path.join(work, "prompt.txt")
    with open(text_path, "w") as f:
        f.write(run(["chat-template", "--tokenizer", model, "--messages", path, "--add-generation-prompt"]).stdout)
    ids = json.loads(run(["tokenize", "--tokenizer", model, "--file", text_path]).stdout)
    with open(os.path.join(model, "generation_config.json")) as f:
        eos = json.load(f)["eos_token_id"]
    eos = eos if isinstance(eos, list) else [eos]
    return json.loads(run(["generate", "--model", model, "--tokens", ",".join(map(str, ids)), "--json",
                           "--stop-ids", ",".join(map(str, eos))] + sampling).stdout)["tokens"]


def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}:\n got  {got!r}\n want {want!r}")
    print(f"{what}: ok")


first = generate_chat(first_line)
turns = [json.loads(line) for line in chat([first_line, second_line], ["--json"]).splitlines()]
expect("two --json turns", len(turns), 2)
expect("turn 1 equals generate --chat", (turns[0]["tokens"], turns[0]["text"]), (first["tokens"], first["text"]))
second = generate_conversation([{"role": "user", "content": first_line},
                                {"role": "assistant", "content": first["text"]},
                                {"role": "user", "content": second_line}])
expect("turn 2 equals generate of the rendered conversation", turns[1]["tokens"], second)
expect("turn 2 reuses the first turn's cache", turns[1]["reused_tokens"] > turns[0]["prompt_tokens"], True)
first, second = first["text"], turns[1]["text"]
expect("two turns as text", chat([first_line, second_line]), first + "\n" + second + "\n")
alone = generate_chat(second_line)["text"]
if alone == second:
    sys.exit("the second line gives the same reply with and without history: the reset check would prove nothing")
expect("/reset forgets the history", chat([first_line, "/reset", second_line]), first + "\n" + alone + "\n")
expect("/exit ends the conversation", chat([first_line, "/exit", second_line]), first + "\n")
expect("a system message", chat([first_line], ["--system", "Answer briefly."]),
       json.loads(run(["generate", "--model", model, "--chat", "--prompt", first_line, "--system", "Answer briefly.",
                       "--json"] + sampling).stdout)["text"] + "\n")
expect("no input, no output", chat([]), "")

plain = os.path.join(work, "no_template")
shutil.rmtree(plain, ignore_errors=True)
shutil.copytree(model, plain)
with open(os.path.join(plain, "tokenizer_config.json")) as f:
    config = json.load(f)
del config["chat_template"]
with open(os.path.join(plain, "tokenizer_config.json"), "w") as f:
    json.dump(config, f)
refused = run(["chat", "--model", plain], stdin="hello\n", status=1)
expect("no chat template is refused", "no chat template" in refused.stderr, True)
print("mlxd chat matches mlxd generate")
