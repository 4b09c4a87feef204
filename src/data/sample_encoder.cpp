#include "mlxd/data/sample_encoder.h"

#include <algorithm>

namespace mlxd::data {
namespace {

void append(sample& s, const std::vector<token_id>& ids, bool loss) {
  s.ids.insert(s.ids.end(), ids.begin(), ids.end());
  s.loss.insert(s.loss.end(), ids.size(), loss ? 1 : 0);
}

const char* type_name(const nlohmann::ordered_json& v) {
  return v.type_name();
}

const std::string& string_field(const nlohmann::ordered_json& j, const char* key, const record& r) {
  if (!j.contains(key)) throw data_error(r.where() + ": missing field \"" + key + "\"");
  if (!j[key].is_string())
    throw data_error(r.where() + ": field \"" + key + "\" must be a string, got " + type_name(j[key]));
  return j[key].get_ref<const std::string&>();
}

record_kind detect(const nlohmann::ordered_json& j, const record& r) {
  if (j.contains("messages")) return record_kind::chat;
  if (j.contains("chosen") || j.contains("rejected")) return record_kind::preference;
  if (j.contains("completion")) return record_kind::completion;
  if (j.contains("text")) return record_kind::text;
  throw data_error(r.where() +
                   ": the record has none of the fields \"text\", \"prompt\"/\"completion\", "
                   "\"messages\", \"prompt\"/\"chosen\"/\"rejected\"");
}

nlohmann::ordered_json parse(const record& r) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(r.text);
  } catch (const nlohmann::json::parse_error& e) {
    throw data_error(r.where() + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw data_error(r.where() + ": a record must be a JSON object, got " + type_name(j));
  return j;
}

}  // namespace

std::vector<int32_t> sample::labels() const {
  std::vector<int32_t> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i] = loss[i] ? ids[i] : ignore_label;
  return out;
}

bool is_jsonl(const std::filesystem::path& path) {
  const auto ext = path.extension().string();
  return ext == ".jsonl" || ext == ".json";
}

sample_encoder::sample_encoder(tokenizer tok, encoder_options options)
    : tok_(std::move(tok)), options_(std::move(options)) {
  const std::string& source = options_.chat_template.empty() ? tok_.chat_template() : options_.chat_template;
  if (!source.empty()) template_ = std::make_shared<const chat_template>(source);
}

sample sample_encoder::encode(const record& r) const {
  sample s;
  const auto bos = tok_.bos_id(), eos = tok_.eos_id();
  if (r.path == nullptr || !is_jsonl(*r.path)) {
    if (options_.kind != record_kind::auto_detect && options_.kind != record_kind::text)
      throw data_error(r.where() + ": a plain-text line is a text record, not the kind asked for");
    if (options_.add_bos && bos) append(s, {*bos}, false);
    append(s, tok_.encode(r.text, false), true);
    if (options_.add_eos && eos) append(s, {*eos}, true);
    return s;
  }
  const auto j = parse(r);
  const record_kind kind = options_.kind == record_kind::auto_detect ? detect(j, r) : options_.kind;
  switch (kind) {
    case record_kind::chat:
      if (!j.contains("messages")) throw data_error(r.where() + ": missing field \"messages\"");
      return encode_chat(j["messages"], r);
    case record_kind::preference:
      throw data_error(r.where() +
                       ": a preference record (prompt/chosen/rejected) is read with encode_preference");
    case record_kind::completion: {
      const auto& prompt = string_field(j, "prompt", r);
      const auto& completion = string_field(j, "completion", r);
      if (options_.add_bos && bos) append(s, {*bos}, false);
      append(s, tok_.encode(prompt, false), false);
      append(s, tok_.encode(completion, false), true);
      if (options_.add_eos && eos) append(s, {*eos}, true);
      return s;
    }
    default: {
      const auto& text = string_field(j, "text", r);
      if (options_.add_bos && bos) append(s, {*bos}, false);
      append(s, tok_.encode(text, false), true);
      if (options_.add_eos && eos) append(s, {*eos}, true);
      return s;
    }
  }
}

preference_sample sample_encoder::encode_preference(const record& r) const {
  if (r.path == nullptr || !is_jsonl(*r.path))
    throw data_error(r.where() + ": preference records are JSON lines");
  const auto j = parse(r);
  const auto& prompt = string_field(j, "prompt", r);
  sample head;
  if (options_.add_bos && tok_.bos_id()) append(head, {*tok_.bos_id()}, false);
  append(head, tok_.encode(prompt, false), false);
  preference_sample out{head, head, head.ids.size()};
  for (auto [key, s] : {std::pair{"chosen", &out.chosen}, std::pair{"rejected", &out.rejected}}) {
    append(*s, tok_.encode(string_field(j, key, r), false), true);
    if (options_.add_eos && tok_.eos_id()) append(*s, {*tok_.eos_id()}, true);
  }
  return out;
}

namespace {

// Throws data_error unless `messages` is a non-empty array of {"role": string, "content": string}.
void check_messages(const nlohmann::ordered_json& messages, const record& r) {
  if (!messages.is_array() || messages.empty())
    throw data_error(r.where() + ": field \"messages\" must be a non-empty array");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string at = r.where() + ": messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw data_error(at + " must be an object, got " + type_name(m));
    for (const char* key : {"role", "content"}) {
      if (!m.contains(key)) throw data_error(at + ": missing field \"" + key + "\"");
      if (!m[key].is_string())
        throw data_error(at + ": field \"" + key + "\" must be a string, got " + type_name(m[key]));
    }
  }
}

}  // namespace

std::string sample_encoder::render_chat(const nlohmann::ordered_json& messages, size_t n,
                                        bool generation_prompt, const record& r) const {
  if (!template_)
    throw data_error(r.where() + ": a \"messages\" record needs a chat template; the tokenizer has none");
  chat_request request;
  request.messages =
      nlohmann::ordered_json(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(n));
  request.add_generation_prompt = generation_prompt;
  try {
    return apply_chat_template(tok_, request, template_.get());
  } catch (const std::exception& e) {
    throw data_error(r.where() + ": chat template: " + e.what());
  }
}

prompt_sample sample_encoder::encode_prompt(const record& r) const {
  prompt_sample p;
  if (r.path == nullptr || !is_jsonl(*r.path)) {
    p.text = r.text;
  } else {
    const auto j = parse(r);
    if (j.contains("messages")) {
      check_messages(j["messages"], r);
      p.text = render_chat(j["messages"], j["messages"].size(), true, r);
      p.ids = tok_.encode(p.text, false);  // the template writes the special tokens
      if (p.ids.empty()) throw data_error(r.where() + ": the prompt encodes to no tokens");
      return p;
    }
    if (!j.contains("prompt"))
      throw data_error(r.where() + ": a prompt record needs a field \"prompt\" or \"messages\"");
    p.text = string_field(j, "prompt", r);
  }
  if (options_.add_bos && tok_.bos_id()) p.ids.push_back(*tok_.bos_id());
  for (token_id id : tok_.encode(p.text, false)) p.ids.push_back(id);
  if (p.ids.empty()) throw data_error(r.where() + ": the prompt encodes to no tokens");
  return p;
}

sample sample_encoder::encode_chat(const nlohmann::ordered_json& messages, const record& r) const {
  if (!template_)
    throw data_error(r.where() + ": a \"messages\" record needs a chat template; the tokenizer has none");
  check_messages(messages, r);
  const auto render = [&](size_t n, bool generation_prompt) {
    return render_chat(messages, n, generation_prompt, r);
  };
  const std::string full = render(messages.size(), false);
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i]["role"] != "assistant") continue;
    const std::string before = render(i, true), after = render(i + 1, false);
    if (!full.starts_with(before) || !full.starts_with(after) || before.size() > after.size())
      throw data_error(r.where() + ": the chat template does not render messages[" + std::to_string(i) +
                       "] as an extension of the conversation before it, so its tokens cannot be marked");
    if (!spans.empty() && before.size() < spans.back().second)
      throw data_error(r.where() + ": the chat template renders assistant turns that overlap");
    spans.emplace_back(before.size(), after.size());
  }
  sample s;
  size_t at = 0;
  for (const auto& [begin, end] : spans) {
    append(s, tok_.encode(std::string_view(full).substr(at, begin - at), false), false);
    append(s, tok_.encode(std::string_view(full).substr(begin, end - begin), false), true);
    at = end;
  }
  append(s, tok_.encode(std::string_view(full).substr(at), false), false);
  return s;
}

}  // namespace mlxd::data
