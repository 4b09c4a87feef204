#include "mlxd/serve/request.h"

#include <cmath>
#include <limits>

#include "mlxd/serve/api_error.h"

namespace mlxd::serve {
namespace {

using json = nlohmann::json;

// nlohmann's parser recurses once per nesting level, so depth is bounded before parsing.
void check_depth(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_json_depth)
        throw bad_request("the JSON body nests deeper than " + std::to_string(max_json_depth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int64_t get_int(const json& j, const char* name, int64_t lo, int64_t hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || (lo > 0 && u < static_cast<uint64_t>(lo)))
      throw bad_request(std::string(name) + " must be in " + range, name);
    return static_cast<int64_t>(u);
  }
  if (!j.is_number_integer()) throw bad_request(std::string(name) + " must be an integer", name);
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) throw bad_request(std::string(name) + " must be in " + range, name);
  return v;
}

float get_float(const json& j, const char* name, double lo, double hi) {
  if (!j.is_number()) throw bad_request(std::string(name) + " must be a number", name);
  const double v = j.get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    throw bad_request(std::string(name) + " must be in [" + json(lo).dump() + ", " + json(hi).dump() + "]",
                      name);
  return static_cast<float>(v);
}

bool get_bool(const json& j, const char* name) {
  if (!j.is_boolean()) throw bad_request(std::string(name) + " must be a boolean", name);
  return j.get<bool>();
}

std::string get_string(const json& j, const char* name) {
  if (!j.is_string()) throw bad_request(std::string(name) + " must be a string", name);
  return j.get<std::string>();
}

json parse_object(std::string_view body) {
  json j = parse_json_body(body);
  if (!j.is_object()) throw bad_request("the request body must be a JSON object");
  return j;
}

std::string parse_model(const json& j) {
  const json* m = field(j, "model");
  return m ? get_string(*m, "model") : std::string();
}

generation_params parse_params(const json& j, bool chat) {
  generation_params p;
  if (const json* v = field(j, "max_completion_tokens"))
    p.max_tokens = static_cast<int>(get_int(*v, "max_completion_tokens", 1, 1 << 30));
  else if (const json* w = field(j, "max_tokens"))
    p.max_tokens = static_cast<int>(get_int(*w, "max_tokens", 1, 1 << 30));
  mlxd::engine::sampling_params& s = p.sampling;
  if (const json* v = field(j, "temperature")) s.temperature = get_float(*v, "temperature", 0, 2);
  if (const json* v = field(j, "top_p")) s.top_p = get_float(*v, "top_p", 0, 1);
  if (s.top_p <= 0) throw bad_request("top_p must be in (0, 1]", "top_p");
  if (const json* v = field(j, "top_k"))
    s.top_k = static_cast<int>(std::max<int64_t>(0, get_int(*v, "top_k", -1, 1 << 30)));
  if (const json* v = field(j, "min_p")) s.min_p = get_float(*v, "min_p", 0, 1);
  if (const json* v = field(j, "presence_penalty"))
    s.presence_penalty = get_float(*v, "presence_penalty", -2, 2);
  if (const json* v = field(j, "frequency_penalty"))
    s.frequency_penalty = get_float(*v, "frequency_penalty", -2, 2);
  if (const json* v = field(j, "repetition_penalty"))
    s.repetition_penalty = get_float(*v, "repetition_penalty", 0.01, 10);
  if (const json* v = field(j, "seed")) {
    s.seed = static_cast<uint64_t>(
        get_int(*v, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
    p.seed_given = true;
  }
  if (const json* v = field(j, "logit_bias")) {
    if (!v->is_object()) throw bad_request("logit_bias must be an object of token id to bias", "logit_bias");
    for (const auto& [key, bias] : v->items()) {
      char* end = nullptr;
      const long id = std::strtol(key.c_str(), &end, 10);
      if (key.empty() || *end != '\0' || id < 0 || id > std::numeric_limits<int32_t>::max())
        throw bad_request("logit_bias: \"" + key + "\" is not a token id", "logit_bias");
      s.logit_bias[static_cast<int32_t>(id)] = get_float(bias, "logit_bias", -100, 100);
    }
  }
  if (const json* v = field(j, "stop")) {
    if (v->is_string()) {
      p.stop.push_back(v->get<std::string>());
    } else if (v->is_array() && v->size() <= 16) {
      for (const json& e : *v) p.stop.push_back(get_string(e, "stop"));
    } else {
      throw bad_request("stop must be a string or a list of at most 16 strings", "stop");
    }
    for (const auto& stop : p.stop)
      if (stop.empty()) throw bad_request("stop strings must not be empty", "stop");
  }
  if (const json* v = field(j, "n")) p.n = static_cast<int>(get_int(*v, "n", 1, max_choices));
  if (const json* v = field(j, "stream")) p.stream = get_bool(*v, "stream");
  if (const json* v = field(j, "stream_options")) {
    if (!v->is_object()) throw bad_request("stream_options must be an object", "stream_options");
    if (const json* u = field(*v, "include_usage"))
      p.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  if (chat) {
    if (const json* v = field(j, "logprobs")) p.logprobs = get_bool(*v, "logprobs");
    if (const json* v = field(j, "top_logprobs")) {
      s.top_logprobs = static_cast<int>(get_int(*v, "top_logprobs", 0, 20));
      if (!p.logprobs && s.top_logprobs > 0)
        throw bad_request("top_logprobs needs logprobs: true", "top_logprobs");
    }
  } else if (const json* v = field(j, "logprobs")) {
    s.top_logprobs = static_cast<int>(get_int(*v, "logprobs", 0, 20));  // the legacy API: an integer
    p.logprobs = true;
  }
  if (const json* v = field(j, "best_of"); v && !(v->is_number_integer() && v->get<int64_t>() == p.n))
    throw bad_request("best_of is not supported (only best_of == n)", "best_of");
  if (const json* v = field(j, "echo"); v && get_bool(*v, "echo"))
    throw bad_request("echo is not supported", "echo");
  if (const json* v = field(j, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
    throw bad_request("suffix is not supported", "suffix");
  if (const json* v = field(j, "tools"); v && !(v->is_array() && v->empty()))
    throw bad_request("tools are not supported by this server", "tools");
  if (const json* v = field(j, "response_format")) {
    const json* t = v->is_object() ? field(*v, "type") : nullptr;
    if (!t || !t->is_string() || t->get<std::string>() != "text")
      throw bad_request("response_format: only {\"type\": \"text\"} is supported", "response_format");
  }
  return p;
}

// Message content: a string, or a list of {"type": "text", "text": ...} parts joined.
std::string message_text(const json& content, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw bad_request(param + " must be a string or a list of text parts", param);
  std::string text;
  for (const json& part : content) {
    const json* type = part.is_object() ? field(part, "type") : nullptr;
    const json* t = part.is_object() ? field(part, "text") : nullptr;
    if (!type || !type->is_string() || type->get<std::string>() != "text" || !t || !t->is_string())
      throw bad_request(param + ": only parts {\"type\": \"text\", \"text\": \"...\"} are supported", param);
    text += t->get<std::string>();
  }
  return text;
}

}  // namespace

json parse_json_body(std::string_view body) {
  check_depth(body);
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    throw bad_request(std::string("the body is not valid JSON: ") + e.what());
  }
}

chat_request parse_chat_request(std::string_view body) {
  const json j = parse_object(body);
  chat_request r;
  r.model = parse_model(j);
  const json* messages = field(j, "messages");
  if (!messages) throw bad_request("messages is required", "messages");
  if (!messages->is_array() || messages->empty())
    throw bad_request("messages must be a non-empty list", "messages");
  r.messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad_request(param + " must be an object", param);
    const json* role = field(m, "role");
    if (!role || !role->is_string()) throw bad_request(param + ".role must be a string", param + ".role");
    std::string name = role->get<std::string>();
    if (name == "developer") name = "system";  // OpenAI's newer name for the system role
    if (name != "system" && name != "user" && name != "assistant" && name != "tool")
      throw bad_request(
          param + ".role: unknown role \"" + name + "\" (system, developer, user, assistant, tool)",
          param + ".role");
    const json* content = field(m, "content");
    if (!content && name != "assistant")
      throw bad_request(param + ".content is required", param + ".content");
    nlohmann::ordered_json out = {{"role", name}, {"content", content ? message_text(*content, i) : ""}};
    if (const json* n = field(m, "name")) out["name"] = get_string(*n, "name");
    r.messages.push_back(std::move(out));
  }
  r.params = parse_params(j, true);
  return r;
}

namespace {

// "prompt" or "input": a string, a list of strings, a list of token ids or a list of such lists.
std::vector<prompt_input> parse_inputs(const json& p, const char* name, int max_count) {
  const std::string n = name;
  auto ids = [&](const json& list) {
    prompt_input in;
    in.is_ids = true;
    for (const json& id : list)
      in.ids.push_back(static_cast<int32_t>(get_int(id, name, 0, std::numeric_limits<int32_t>::max())));
    return in;
  };
  std::vector<prompt_input> out;
  const bool listed = p.is_array() && !p.empty() && p.size() <= static_cast<size_t>(max_count);
  if (p.is_string()) {
    out.push_back({p.get<std::string>(), {}, false});
  } else if (listed && p[0].is_string()) {
    for (const json& e : p) out.push_back({get_string(e, name), {}, false});
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    out.push_back(ids(p));
  } else if (listed && p[0].is_array()) {
    for (const json& e : p) {
      if (!e.is_array() || e.empty()) throw bad_request(n + ": every list of token ids must be non-empty", n);
      out.push_back(ids(e));
    }
  } else {
    throw bad_request(n + " must be a string, a list of at most " + std::to_string(max_count) +
                          " strings, a list of token ids or a list of such lists",
                      n);
  }
  return out;
}

}  // namespace

completion_request parse_completion_request(std::string_view body) {
  const json j = parse_object(body);
  completion_request r;
  r.model = parse_model(j);
  const json* p = field(j, "prompt");
  if (!p) throw bad_request("prompt is required", "prompt");
  r.prompts = parse_inputs(*p, "prompt", max_prompts);
  r.params = parse_params(j, false);
  return r;
}

embeddings_request parse_embeddings_request(std::string_view body) {
  const json j = parse_object(body);
  embeddings_request r;
  r.model = parse_model(j);
  const json* in = field(j, "input");
  if (!in) throw bad_request("input is required", "input");
  r.inputs = parse_inputs(*in, "input", max_embedding_inputs);
  if (const json* f = field(j, "encoding_format")) {
    const std::string format = get_string(*f, "encoding_format");
    if (format != "float" && format != "base64")
      throw bad_request("encoding_format must be \"float\" or \"base64\"", "encoding_format");
    r.base64 = format == "base64";
  }
  if (const json* d = field(j, "dimensions")) r.dimensions = get_int(*d, "dimensions", 1, 1 << 20);
  return r;
}

}  // namespace mlxd::serve
