#include "mlxd/data/batch.h"

#include <stdexcept>

#include "data/batch_builder.h"

namespace mlxd::data {

bool batch::attends(int64_t row, int64_t q, int64_t k) const {
  const auto at = [&](int64_t t) { return segment_ids[static_cast<size_t>(row * seq_len + t)]; };
  return k <= q && at(q) != 0 && at(q) == at(k);
}

namespace detail {

void check(const batch_options& o) {
  if (o.rows < 1 || o.seq_len < 1) throw std::invalid_argument("[batch] rows and seq_len must be at least 1");
}

// One segment: tokens [offset, offset + n) of `s` at `used` in `row`; the last has no target.
void place(batch& b, int64_t row, int64_t used, int32_t segment, const sample& s, uint64_t offset,
           int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const size_t at = static_cast<size_t>(row * b.seq_len + used + k);
    const size_t i = offset + static_cast<size_t>(k);
    b.inputs[at] = s.ids[i];
    b.segment_ids[at] = segment;
    b.position_ids[at] = static_cast<int32_t>(k);
    if (k + 1 < n && s.loss[i + 1]) {
      b.targets[at] = s.ids[i + 1];
      ++b.n_targets;
    }
  }
}

std::optional<batch> fill(const batch_options& o, sample_feed& feed) {
  batch b;
  b.rows = o.rows;
  b.seq_len = o.seq_len;
  const auto cells = static_cast<size_t>(o.rows * o.seq_len);
  b.inputs.assign(cells, o.pad_id);
  b.targets.assign(cells, ignore_label);
  b.segment_ids.assign(cells, 0);
  b.position_ids.assign(cells, 0);
  int64_t row = 0, used = 0;
  int32_t segment = 0;
  while (row < o.rows) {
    uint64_t offset = 0;
    const sample* s = feed.peek(offset);
    if (s == nullptr) break;
    const auto rest = static_cast<int64_t>(s->ids.size() - offset);
    const int64_t space = o.seq_len - used;
    int64_t n;
    if (rest <= space && (o.pack || used == 0)) {
      n = rest;
    } else if (used == 0) {
      n = o.seq_len;  // a sample longer than a row: a full row of it
    } else if (o.pack && rest > o.seq_len) {
      n = space;  // a long sample fills the rest of the row
    } else {
      ++row, used = 0, segment = 0;
      continue;
    }
    place(b, row, used, ++segment, *s, offset, n);
    feed.consume(static_cast<uint64_t>(n));
    used += n;
    if (used == o.seq_len || !o.pack) ++row, used = 0, segment = 0;
  }
  const int64_t rows = row + (used > 0 ? 1 : 0);
  if (rows == 0) return std::nullopt;
  b.rows = rows;
  const auto kept = static_cast<size_t>(rows * o.seq_len);
  for (auto* v : {&b.inputs, &b.targets, &b.segment_ids, &b.position_ids}) v->resize(kept);
  return b;
}

}  // namespace detail

std::vector<batch> make_batches(const std::vector<sample>& samples, const batch_options& options) {
  detail::check(options);
  struct vector_feed final : detail::sample_feed {
    const std::vector<sample>& samples;
    size_t index = 0;
    uint64_t offset = 0;
    explicit vector_feed(const std::vector<sample>& s) : samples(s) {}
    const sample* peek(uint64_t& out) override {
      while (index < samples.size() && offset == samples[index].ids.size()) ++index, offset = 0;
      out = offset;
      return index < samples.size() ? &samples[index] : nullptr;
    }
    void consume(uint64_t n) override { offset += n; }
  } feed(samples);
  std::vector<batch> out;
  while (auto b = detail::fill(options, feed)) out.push_back(std::move(*b));
  return out;
}

batch_loader::batch_loader(record_source source, const sample_encoder& encoder, batch_options options)
    : source_(std::move(source)), encoder_(encoder), options_(options) {
  detail::check(options_);
}

bool batch_loader::fetch() {
  while (!pending_ || pending_offset_ >= pending_->ids.size()) {
    const cursor before = source_.position();
    auto r = source_.next();
    if (!r) {
      pending_.reset();
      return false;
    }
    pending_ = encoder_.encode(*r);
    pending_cursor_ = before;
    pending_offset_ = skip_;
    skip_ = 0;
  }
  return true;
}

std::optional<batch> batch_loader::next() {
  struct loader_feed final : detail::sample_feed {
    batch_loader& self;
    explicit loader_feed(batch_loader& l) : self(l) {}
    const sample* peek(uint64_t& out) override {
      if (!self.fetch()) return nullptr;
      out = self.pending_offset_;
      return &*self.pending_;
    }
    void consume(uint64_t n) override { self.pending_offset_ += n; }
  } feed(*this);
  return detail::fill(options_, feed);
}

cursor batch_loader::position() const {
  if (pending_ && pending_offset_ < pending_->ids.size()) {
    cursor c = pending_cursor_;
    c.token_offset = pending_offset_;
    return c;
  }
  cursor c = source_.position();
  c.token_offset = skip_;
  return c;
}

void batch_loader::restore(const cursor& c) {
  source_.restore(c);
  pending_.reset();
  pending_offset_ = 0;
  skip_ = c.token_offset;
}

}  // namespace mlxd::data
