#include "sequence_output.h"

#include <algorithm>

namespace mlxd::serve::detail {
namespace {
double seconds(sequence_output::clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}
}  // namespace

sequence_output::sequence_output(int index, const sequence_request& spec, const tokenizer& tok,
                                 metrics* stats)
    : index_(index), max_tokens_(spec.max_tokens), tok_(tok), text_(tok, spec.stop), stats_(stats) {}

sequence_event sequence_output::add(mlxd::engine::sample_result r) {
  ++n_generated_;
  const auto now = clock_type::now();
  if (stats_) {
    ++stats_->generated_tokens;
    if (n_generated_ == 1)
      stats_->time_to_first_token.observe(seconds(now - arrival_));
    else
      stats_->time_per_output_token.observe(seconds(now - last_token_));
  }
  last_token_ = now;
  const auto& eos = tok_.eos_ids();
  const bool is_eos = std::find(eos.begin(), eos.end(), r.id) != eos.end();
  sequence_event ev;
  ev.index = index_;
  if (!is_eos) ev.text = text_.push(r.id);
  ev.tokens.push_back(std::move(r));
  if (is_eos || text_.stopped())
    ev.finish_reason = "stop";
  else if (static_cast<int>(n_generated_) >= max_tokens_)
    ev.finish_reason = "length";
  if (!ev.finish_reason.empty()) {
    finished_ = true;
    ev.text += text_.finish();
    if (stats_) stats_->request_duration.observe(seconds(now - arrival_));
  }
  return ev;
}

}  // namespace mlxd::serve::detail
