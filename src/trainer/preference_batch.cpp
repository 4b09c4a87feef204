#include "preference_batch.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "mlxd/data/sample.h"

namespace mlxd::trainer {

namespace {

void truncate(data::sample& s, int64_t seq_len) {
  const auto n = static_cast<size_t>(seq_len);
  if (s.ids.size() > n) s.ids.resize(n), s.loss.resize(n);
}

double margin_of(const data::record& r) {
  const auto j = nlohmann::json::parse(r.text, nullptr, false);
  if (!j.is_object() || !j.contains("margin")) return 0.0;
  if (!j["margin"].is_number()) throw data::data_error(r.where() + ": field \"margin\" must be a number");
  return j["margin"].get<double>();
}

}  // namespace

std::vector<preference_record> read_pairs(data::record_source& source, const data::sample_encoder& encoder,
                                          int64_t n, int64_t seq_len) {
  std::vector<preference_record> out;
  while (static_cast<int64_t>(out.size()) < n) {
    const std::optional<data::record> r = source.next();
    if (!r) break;
    preference_record p{encoder.encode_preference(*r), margin_of(*r), data::fnv1a64(r->text)};
    if (static_cast<int64_t>(p.sample.prompt_length) >= seq_len)
      throw data::data_error(
          r->where() + ": the prompt's " + std::to_string(p.sample.prompt_length) +
          " tokens leave no room for a response within data.seq_len = " + std::to_string(seq_len));
    truncate(p.sample.chosen, seq_len);
    truncate(p.sample.rejected, seq_len);
    out.push_back(std::move(p));
  }
  return out;
}

pair_batch make_pair_batch(const std::vector<preference_record>& pairs, int32_t pad_id) {
  pair_batch b;
  b.pairs = static_cast<int64_t>(pairs.size());
  const int64_t rows = 2 * b.pairs;
  int64_t width = 1;
  for (const auto& p : pairs)
    width = std::max({width, static_cast<int64_t>(p.sample.chosen.ids.size()),
                      static_cast<int64_t>(p.sample.rejected.ids.size())});
  const auto cells = static_cast<size_t>(rows * width);
  std::vector<int32_t> tokens(cells, pad_id), segments(cells, 0), labels(cells, data::ignore_label);
  std::vector<float> mask(cells, 0.0f);
  std::vector<int32_t> last(static_cast<size_t>(rows), 0);
  std::vector<float> margins;
  for (int64_t row = 0; row < rows; ++row) {
    const preference_record& p = pairs[static_cast<size_t>(row % b.pairs)];
    const data::sample& s = row < b.pairs ? p.sample.chosen : p.sample.rejected;
    const auto n = static_cast<int64_t>(s.ids.size());
    for (int64_t t = 0; t < n; ++t) {
      const auto at = static_cast<size_t>(row * width + t);
      tokens[at] = s.ids[static_cast<size_t>(t)];
      segments[at] = 1;
      if (t + 1 < n && s.loss[static_cast<size_t>(t + 1)]) {
        labels[at] = s.ids[static_cast<size_t>(t + 1)];
        mask[at] = 1.0f;
      }
    }
    last[static_cast<size_t>(row)] = static_cast<int32_t>(row * width + std::max<int64_t>(n - 1, 0));
    b.tokens += n;
  }
  for (const auto& p : pairs) {
    margins.push_back(static_cast<float>(p.margin));
    b.keys.push_back(p.key);
  }
  const shape_t shape = {rows, width};
  b.inputs = models::make_train_batch(array::from(tokens, shape), array::from(segments, shape));
  b.labels = array::from(labels, shape);
  b.mask = array::from(mask, shape);
  b.last = array::from(last, {rows});
  b.margins = array::from(margins, {b.pairs});
  return b;
}

}  // namespace mlxd::trainer
