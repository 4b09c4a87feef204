#include <stdexcept>

#include "mlxd/data/batch.h"
#include "objectives.h"
#include "setup.h"

namespace mlxd::trainer {
namespace {

// The rows of `more` after those of `b` (same seq_len).
void append_rows(data::batch& b, const data::batch& more) {
  if (b.rows == 0) {
    b = more;
    return;
  }
  b.rows += more.rows;
  b.n_targets += more.n_targets;
  for (auto [to, from] :
       {std::pair{&b.inputs, &more.inputs}, std::pair{&b.targets, &more.targets},
        std::pair{&b.segment_ids, &more.segment_ids}, std::pair{&b.position_ids, &more.position_ids}}) {
    to->insert(to->end(), from->begin(), from->end());
  }
}

// The next-token loss over packed (or padded) rows of text, completion or chat samples.
//
// With data.row_streams, a step's G = accumulation x ranks x batch_size rows each come from their own
// loader: global row j (micro-batch i, rank q, row r: j = (i * ranks + q) * batch_size + r) packs the
// records k with k mod G == j, one row a step. So 1 process x N rows, N ranks x 1 row and N micro-batches
// of 1 row read the same rows each step.
class lm_objective final : public objective {
 public:
  lm_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder) {
    data::batch_options settings = batch_settings(c, encoder.tok());
    if (!c.data.row_streams) {
      loaders_.emplace_back(data::record_source(std::move(source)), encoder, settings);
      return;
    }
    rows_ = settings.rows;
    groups_ = c.optim.accumulation;
    const int64_t ranks = source.world_size, rank = source.rank;
    settings.rows = 1;
    loaders_.reserve(static_cast<size_t>(groups_ * rows_));
    for (int64_t i = 0; i < groups_; ++i) {
      for (int64_t r = 0; r < rows_; ++r) {
        data::source_options stream = source;
        stream.rank = (i * ranks + rank) * rows_ + r;
        stream.world_size = groups_ * ranks * rows_;
        loaders_.emplace_back(data::record_source(std::move(stream)), encoder, settings);
      }
    }
  }

  std::optional<micro_batch> next(const policy_view& policy) override {
    std::optional<data::batch> b = next_batch();
    if (!b) return std::nullopt;
    const shape_t shape = {b->rows, b->seq_len};
    const models::train_batch inputs{array::from(b->inputs, shape), array::from(b->segment_ids, shape),
                                     array::from(b->position_ids, shape)};
    const array labels = array::from(b->targets, shape);
    micro_batch m;
    m.units = static_cast<double>(b->n_targets);
    m.tokens = b->n_targets;
    m.loss_sum = [forward = policy.forward, inputs, labels](const std::vector<array>& p,
                                                            std::vector<double>&) {
      return models::masked_cross_entropy(forward(p, inputs, false), labels).sum;
    };
    return m;
  }

  data::cursor position() const override { return loaders_[static_cast<size_t>(group_ * rows_)].position(); }
  void restore(const data::cursor& c) override { restore_all({c}); }
  std::vector<data::cursor> cursors() const override {
    std::vector<data::cursor> out;
    for (const data::batch_loader& l : loaders_) out.push_back(l.position());
    return out;
  }
  void restore_all(const std::vector<data::cursor>& c) override {
    if (c.size() != loaders_.size()) {
      throw config_error("the checkpoint holds " + std::to_string(c.size()) +
                         " data streams a rank and this run reads " + std::to_string(loaders_.size()) +
                         " (data.row_streams: accumulation x batch_size): resume with the same settings");
    }
    for (size_t i = 0; i < c.size(); ++i) loaders_[i].restore(c[i]);
    group_ = 0;
  }
  const char* unit_name() const override { return "target tokens"; }
  std::vector<stat_spec> stats() const override { return {}; }

 private:
  // The next micro-batch: the single loader's, or one row from each stream of the current group.
  std::optional<data::batch> next_batch() {
    if (loaders_.size() == 1) return loaders_[0].next();
    data::batch out;
    for (int64_t r = 0; r < rows_; ++r) {
      if (std::optional<data::batch> row = loaders_[static_cast<size_t>(group_ * rows_ + r)].next())
        append_rows(out, *row);
    }
    group_ = (group_ + 1) % groups_;
    if (out.rows == 0) return std::nullopt;
    return out;
  }

  std::vector<data::batch_loader> loaders_;
  int64_t rows_ = 1, groups_ = 1;  // with row streams: loaders per micro-batch, micro-batches per step
  int64_t group_ = 0;              // the group the next micro-batch reads
};

}  // namespace

std::unique_ptr<objective> make_lm_objective(const train_config& c, data::source_options source,
                                             const data::sample_encoder& encoder) {
  return std::make_unique<lm_objective>(c, std::move(source), encoder);
}

}  // namespace mlxd::trainer
