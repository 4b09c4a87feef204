#include "mlxd/data/record_source.h"

#include <stdexcept>

#include "mlxd/data/line_reader.h"
#include "mlxd/data/sample.h"

namespace mlxd::data {
namespace {

struct line_entry {
  uint64_t file, offset, line;
  bool validation;
};

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Fisher-Yates over [0, n) driven by splitmix64: the same permutation on every platform.
std::vector<uint64_t> permutation(uint64_t n, uint64_t seed, int64_t epoch) {
  std::vector<uint64_t> order(n);
  for (uint64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t state = seed ^ (static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ull);
  for (uint64_t i = n; i > 1; --i) {
    const uint64_t j = splitmix64(state) % i;  // bias below i / 2^64: immaterial
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

}  // namespace

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

nlohmann::json cursor::to_json() const {
  return {{"epoch", epoch}, {"position", position},         {"file", file},  {"offset", offset},
          {"line", line},   {"token_offset", token_offset}, {"dealt", dealt}};
}

std::vector<int64_t> cursor::to_row() const {
  return {epoch,
          static_cast<int64_t>(position),
          static_cast<int64_t>(file),
          static_cast<int64_t>(offset),
          static_cast<int64_t>(line),
          static_cast<int64_t>(token_offset),
          static_cast<int64_t>(dealt)};
}

cursor cursor::from_row(const int64_t* v) {
  return {v[0],
          static_cast<uint64_t>(v[1]),
          static_cast<uint64_t>(v[2]),
          static_cast<uint64_t>(v[3]),
          static_cast<uint64_t>(v[4]),
          static_cast<uint64_t>(v[5]),
          static_cast<uint64_t>(v[6])};
}

cursor cursor::from_json(const nlohmann::json& j) {
  cursor c;
  const auto get = [&j](const char* key, auto& out) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer())
      throw data_error(std::string("data cursor: '") + key + "' must be an integer");
    out = j[key].get<std::decay_t<decltype(out)>>();
  };
  get("epoch", c.epoch);
  get("position", c.position);
  get("file", c.file);
  get("offset", c.offset);
  get("line", c.line);
  get("token_offset", c.token_offset);
  c.dealt = c.position;
  if (j.contains("dealt")) get("dealt", c.dealt);
  return c;
}

std::string record::where() const {
  return (path ? path->string() : std::string("?")) + ":" + std::to_string(line);
}

struct record_source::impl {
  cursor cur;
  std::optional<line_reader> reader;  // unshuffled: the open file
  bool epoch_had_lines = false;
  bool epoch_yielded = false;  // a record of this rank and split came out this epoch (else stop: none will)
  std::vector<line_entry> index;  // shuffled: every non-empty line
  std::vector<uint64_t> order;
  int64_t order_epoch = -1;
  std::vector<std::unique_ptr<std::FILE, int (*)(std::FILE*)>> files;
};

record_source::record_source(source_options options)
    : options_(std::move(options)), impl_(std::make_unique<impl>()) {
  if (options_.files.empty()) throw std::invalid_argument("[record_source] no files");
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size)
    throw std::invalid_argument("[record_source] rank " + std::to_string(options_.rank) +
                                " outside world size " + std::to_string(options_.world_size));
  if (!(options_.validation_fraction >= 0.0 && options_.validation_fraction <= 1.0))
    throw std::invalid_argument("[record_source] validation_fraction must be in [0, 1]");
  if (options_.max_epochs < 0) throw std::invalid_argument("[record_source] max_epochs must be >= 0");
  if (!options_.shuffle) return;
  std::string line;
  for (uint64_t f = 0; f < options_.files.size(); ++f) {
    line_reader reader(options_.files[f]);
    while (reader.next(line)) {
      if (!line.empty())
        impl_->index.push_back({f, reader.line_offset(), reader.line_number(), in_validation(line)});
    }
  }
}

bool record_source::in_validation(std::string_view line) const {
  return options_.validation_fraction > 0.0 &&
         static_cast<double>(fnv1a64(line)) < options_.validation_fraction * 18446744073709551616.0;  // 2^64
}

record_source::~record_source() = default;
record_source::record_source(record_source&&) noexcept = default;

void record_source::ensure_order() const {
  if (impl_->order_epoch == impl_->cur.epoch) return;
  impl_->order = permutation(impl_->index.size(), options_.seed, impl_->cur.epoch);
  impl_->order_epoch = impl_->cur.epoch;
}

cursor record_source::position() const {
  cursor c = impl_->cur;
  if (options_.shuffle && c.position < impl_->index.size()) {
    ensure_order();
    const auto& e = impl_->index[impl_->order[c.position]];
    c.file = e.file, c.offset = e.offset, c.line = e.line;
  }
  return c;
}

void record_source::restore(const cursor& c) {
  if (options_.shuffle ? c.position > impl_->index.size() : c.file >= options_.files.size())
    throw data_error("data cursor does not fit the files (position " + std::to_string(c.position) +
                     ", file " + std::to_string(c.file) + ")");
  impl_->cur = c;
  impl_->cur.token_offset = 0;
  impl_->reader.reset();
  if (!options_.shuffle) impl_->reader.emplace(options_.files[c.file], c.offset, c.line);
  impl_->epoch_had_lines = c.position > 0;
  impl_->epoch_yielded = true;
}

std::optional<record> record_source::next() {
  auto& s = *impl_;
  const uint64_t world = static_cast<uint64_t>(options_.world_size);
  const bool want_validation = options_.which == split::validation;
  if (want_validation && options_.validation_fraction <= 0.0) return std::nullopt;
  // Whether the line in split `validation` is this rank's: the split filters before the deal.
  const auto mine = [&](bool validation) {
    return validation == want_validation && s.cur.dealt++ % world == static_cast<uint64_t>(options_.rank);
  };
  while (true) {
    if (options_.max_epochs > 0 && s.cur.epoch >= options_.max_epochs) return std::nullopt;
    record r;
    if (options_.shuffle) {
      if (s.index.empty()) return std::nullopt;
      if (s.cur.position >= s.index.size()) {
        if (!s.epoch_yielded) return std::nullopt;
        ++s.cur.epoch;
        s.cur.position = 0;
        s.epoch_yielded = false;
        continue;
      }
      ensure_order();
      const auto& e = s.index[s.order[s.cur.position++]];
      if (!mine(e.validation)) continue;
      line_reader reader(options_.files[e.file], e.offset, e.line, 4096);
      reader.next(r.text);
      r.file = e.file, r.line = e.line;
    } else {
      if (!s.reader) s.reader.emplace(options_.files[s.cur.file], s.cur.offset, s.cur.line);
      if (!s.reader->next(r.text)) {
        s.reader.reset();
        s.cur.offset = 0, s.cur.line = 1;
        if (++s.cur.file == options_.files.size()) {
          if (!s.epoch_had_lines || !s.epoch_yielded) return std::nullopt;  // never loop over nothing
          s.cur.file = 0, s.cur.position = 0, s.epoch_had_lines = false, s.epoch_yielded = false;
          ++s.cur.epoch;
        }
        continue;
      }
      s.cur.offset = s.reader->next_offset();
      s.cur.line = s.reader->line_number() + 1;
      if (r.text.empty()) continue;
      s.epoch_had_lines = true;
      ++s.cur.position;
      if (!mine(in_validation(r.text))) continue;
      r.file = s.cur.file, r.line = s.reader->line_number();
    }
    r.path = &options_.files[r.file];
    s.epoch_yielded = true;
    return r;
  }
}

}  // namespace mlxd::data
