#include "objectives.h"

#include "mlxd/data/batch.h"
#include "setup.h"

namespace mlxd::trainer {
namespace {

// The next-token loss over packed (or padded) rows of text, completion or chat samples.
class lm_objective final : public objective {
 public:
  lm_objective(const train_config& c, data::source_options source, const data::sample_encoder& encoder)
      : loader_(data::record_source(std::move(source)), encoder, batch_settings(c, encoder.tok())) {}

  std::optional<micro_batch> next(const policy_view& policy) override {
    std::optional<data::batch> b = loader_.next();
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

  data::cursor position() const override { return loader_.position(); }
  void restore(const data::cursor& c) override { loader_.restore(c); }
  const char* unit_name() const override { return "target tokens"; }
  std::vector<stat_spec> stats() const override { return {}; }

 private:
  data::batch_loader loader_;
};

}  // namespace

std::unique_ptr<objective> make_lm_objective(const train_config& c, data::source_options source,
                                             const data::sample_encoder& encoder) {
  return std::make_unique<lm_objective>(c, std::move(source), encoder);
}

}  // namespace mlxd::trainer
