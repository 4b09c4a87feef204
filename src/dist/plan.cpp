#include "mlxd/dist/plan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>

#include "dist/survivor_plan.h"

namespace mlxd::dist {
namespace {

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

int parse_layer(const std::string& text, const std::string& whole) {
  size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < 0)
    throw std::invalid_argument("--layers: \"" + whole + "\" is not a list of layer ranges like 0-11,12-23");
  return v;
}

uint64_t needed_bytes(const models::llama_config& c, const models::llama_stage& s, int kv_positions) {
  return stage_weight_bytes(c, s) +
         static_cast<uint64_t>(kv_positions) * kv_bytes_per_position(c, s.n_layers());
}

// Every node's stage must fit its memory (0: unknown, not checked).
void check_fits(const models::llama_config& c, const pipeline_plan& plan, const std::vector<node_info>& nodes,
                int kv_positions) {
  for (const plan_stage& s : plan) {
    if (s.node < 0 || nodes[s.node].memory_bytes == 0) continue;
    const uint64_t need = needed_bytes(c, s.layers, kv_positions);
    if (need > nodes[s.node].memory_bytes)
      throw plan_error("the model does not fit: " + nodes[s.node].address + " would need " + mib(need) +
                       " for layers " + std::to_string(s.layers.layer_begin) + "-" +
                       std::to_string(s.layers.layer_end - 1) + " but offers " +
                       mib(nodes[s.node].memory_bytes));
  }
}

// Each node's speed for sharing out the work: its measured speed, or 1 for all when any is unknown. Nodes
// reached at one host share its cores, so they get the best speed measured there: workers that started
// together measured while competing (134 and 175 GFLOP/s here), and the split would follow that noise.
std::vector<double> node_speeds(const std::vector<node_info>& nodes) {
  const bool known = std::all_of(nodes.begin(), nodes.end(), [](const node_info& x) { return x.gflops > 0; });
  std::map<std::string, double> best;
  for (const node_info& x : nodes) best[host_of(x.address)] = std::max(best[host_of(x.address)], x.gflops);
  std::vector<double> w;
  for (const node_info& x : nodes) w.push_back(known ? best[host_of(x.address)] : 1.0);
  return w;
}

// Layers per node (not yet whole) that give every node the same time per token: the work (the layers plus
// `head` layers' worth on the last node) split in proportion to speed. A head heavier than the last node's
// share leaves it no layers, and the others share them all.
std::vector<double> work_shares(int layers, double head, const std::vector<double>& w) {
  const size_t n = w.size();
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::vector<double> exact(n);
  for (size_t i = 0; i < n; ++i) exact[i] = (layers + head) * w[i] / total - (i + 1 == n ? head : 0.0);
  if (exact.back() < 0 && n > 1) {
    exact.back() = 0;
    for (size_t i = 0; i + 1 < n; ++i) exact[i] = layers * w[i] / (total - w.back());
  }
  return exact;
}

}  // namespace

std::string host_of(const std::string& address) {
  if (!address.empty() && address.front() == '[') return address.substr(1, address.find(']') - 1);
  const size_t colon = address.find(':');
  return colon == std::string::npos || address.rfind(':') != colon ? address : address.substr(0, colon);
}

std::vector<layer_range> parse_layer_ranges(const std::string& text) {
  std::vector<layer_range> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t dash = item.find('-');
    const int begin = parse_layer(item.substr(0, dash), text);
    const int last = dash == std::string::npos ? begin : parse_layer(item.substr(dash + 1), text);
    if (last < begin) throw std::invalid_argument("--layers: range " + item + " ends before it begins");
    out.emplace_back(begin, last + 1);
  }
  if (out.empty()) throw std::invalid_argument("--layers: no ranges given");
  return out;
}

uint64_t stage_weight_bytes(const models::llama_config& c, const models::llama_stage& s) {
  uint64_t bytes = 0;
  for (const auto& [tensor_name, shape] : models::stage_tensors(c, s))
    bytes += static_cast<uint64_t>(shape_size(shape)) * sizeof(float);
  return bytes;
}

uint64_t kv_bytes_per_position(const models::llama_config& c, int n_layers) {
  return uint64_t{2} * static_cast<uint64_t>(n_layers) * static_cast<uint64_t>(c.n_kv_heads) *
         static_cast<uint64_t>(c.head_dim) * sizeof(float);
}

pipeline_plan plan_pipeline(const models::llama_config& c, const std::vector<node_info>& nodes,
                            const plan_options& o) {
  const int n_layers = c.n_layers;
  pipeline_plan plan;
  int first = 0;
  if (o.coordinator_layers) {
    const auto [begin, end] = *o.coordinator_layers;
    if (begin != 0 || end > n_layers)
      throw plan_error("--coordinator-layers must be a range starting at layer 0 within the model's " +
                       std::to_string(n_layers) + " layers");
    plan.push_back({-1, {0, end, true, false}});
    first = end;
  }
  if (nodes.empty())
    throw plan_error("no workers to place layers " + std::to_string(first) + "-" +
                     std::to_string(n_layers - 1) + " on");
  const int n = static_cast<int>(nodes.size());
  std::vector<int> counts(n, 0);
  if (!o.layers.empty()) {
    if (static_cast<int>(o.layers.size()) != n)
      throw plan_error("--layers gives " + std::to_string(o.layers.size()) + " ranges for " +
                       std::to_string(n) + " workers");
    int next = first;
    for (const auto& [begin, end] : o.layers) {
      if (begin != next)
        throw plan_error("--layers must cover layers " + std::to_string(first) + "-" +
                         std::to_string(n_layers - 1) + " contiguously; a range starts at " +
                         std::to_string(begin) + " where " + std::to_string(next) + " was expected");
      next = end;
    }
    if (next != n_layers)
      throw plan_error("--layers ends at layer " + std::to_string(next - 1) + " but the model has " +
                       std::to_string(n_layers) + " layers");
    for (int i = 0; i < n; ++i) counts[i] = o.layers[i].second - o.layers[i].first;
  } else {
    const int remaining = n_layers - first;
    const uint64_t per_layer = needed_bytes(c, {0, 1, false, false}, o.kv_positions);
    std::vector<int> cap(n);
    for (int i = 0; i < n; ++i) {
      const models::llama_stage fixed{0, 0, !o.coordinator_layers && i == 0, i == n - 1};
      const uint64_t base = stage_weight_bytes(c, fixed), mem = nodes[i].memory_bytes;
      if (mem == 0) {
        cap[i] = remaining;
      } else if (mem < base) {
        throw plan_error("the model does not fit: " + nodes[i].address + " offers " + mib(mem) + " but the " +
                         (fixed.head ? "LM head" : "embedding") + " alone needs " + mib(base));
      } else {
        cap[i] =
            static_cast<int>(std::min<uint64_t>((mem - base) / per_layer, static_cast<uint64_t>(remaining)));
      }
    }
    if (std::accumulate(cap.begin(), cap.end(), 0) < remaining) {
      std::string offered;
      for (int i = 0; i < n; ++i)
        offered += (i ? ", " : "") + nodes[i].address + " " + mib(nodes[i].memory_bytes) + " (" +
                   std::to_string(cap[i]) + " layers)";
      throw plan_error("the model does not fit: " + std::to_string(remaining) + " layers of " +
                       mib(per_layer) + " each (weights and KV room for " + std::to_string(o.kv_positions) +
                       " positions) plus the embedding and head; the workers offer " + offered);
    }
    const std::vector<double> w = node_speeds(nodes);
    // What a stage computes per token, in layers: its layers, plus the LM head on the last one (the
    // embedding is one row read per token, free by comparison).
    const double head = static_cast<double>(stage_weight_bytes(c, {0, 0, false, true})) /
                        static_cast<double>(stage_weight_bytes(c, {0, 1, false, false}));
    const std::vector<double> exact = work_shares(remaining, head, w);
    // Largest remainder of the speed-proportional shares of the work, then capped by memory; the surplus
    // goes to the node with room whose next layer keeps its time per token the lowest.
    int placed = 0;
    for (int i = 0; i < n; ++i) {
      counts[i] = static_cast<int>(exact[i]);
      placed += counts[i];
    }
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return exact[a] - counts[a] > exact[b] - counts[b]; });
    for (int k = 0; placed < remaining; k = (k + 1) % n, ++placed) ++counts[order[k]];
    int surplus = 0;
    for (int i = 0; i < n; ++i) {
      surplus += std::max(0, counts[i] - cap[i]);
      counts[i] = std::min(counts[i], cap[i]);
    }
    const auto stage_time = [&](int i, int layers) { return (layers + (i == n - 1 ? head : 0.0)) / w[i]; };
    for (; surplus > 0; --surplus) {
      int best = -1;
      for (int i = 0; i < n; ++i)
        if (counts[i] < cap[i] &&
            (best < 0 || stage_time(i, counts[i] + 1) < stage_time(best, counts[best] + 1)))
          best = i;
      ++counts[best];
    }
  }
  int next = first;
  for (int i = 0; i < n; ++i) {
    if (counts[i] == 0 && o.layers.empty() && i != n - 1) continue;  // a planned node without layers
    plan.push_back({i, {next, next + counts[i], false, false}});
    next += counts[i];
  }
  plan.front().layers.embedding = true;
  plan.back().layers.head = true;
  check_fits(c, plan, nodes, o.kv_positions);
  return plan;
}

std::optional<pipeline_plan> plan_keeping_survivors(const models::llama_config& c,
                                                    const pipeline_plan& previous,
                                                    const std::vector<node_info>& previous_nodes,
                                                    const std::vector<node_info>& nodes,
                                                    const plan_options& o) {
  // Where each stage's node of the previous plan is now: an index into `nodes`, -1 the coordinator, -2 lost.
  std::vector<int> now(previous.size(), -2);
  std::vector<bool> kept(nodes.size(), false);
  for (size_t i = 0; i < previous.size(); ++i) {
    if (previous[i].node < 0) {
      now[i] = -1;
      continue;
    }
    if (previous[i].node >= static_cast<int>(previous_nodes.size())) return std::nullopt;
    for (size_t k = 0; k < nodes.size(); ++k)
      if (!kept[k] && nodes[k].address == previous_nodes[previous[i].node].address) {
        now[i] = static_cast<int>(k);
        kept[k] = true;
        break;
      }
  }
  // A node the previous plan did not use (new, back, or left without layers): spread the layers again.
  if (std::find(kept.begin(), kept.end(), false) != kept.end()) return std::nullopt;
  pipeline_plan plan;
  std::optional<models::llama_stage> carried;  // lost layers with no worker stage before them to take them
  for (size_t i = 0; i < previous.size(); ++i) {
    const models::llama_stage& s = previous[i].layers;
    if (now[i] == -2) {
      if (carried) {
        carried->layer_end = s.layer_end;
        carried->head = carried->head || s.head;
      } else if (!plan.empty() && plan.back().node >= 0) {
        plan.back().layers.layer_end = s.layer_end;
        plan.back().layers.head = plan.back().layers.head || s.head;
      } else {
        carried = s;
      }
      continue;
    }
    plan_stage stage{now[i], s};
    if (carried) {
      stage.layers.layer_begin = carried->layer_begin;
      stage.layers.embedding = stage.layers.embedding || carried->embedding;
      carried.reset();
    }
    plan.push_back(stage);
  }
  if (carried || plan.empty() || plan.back().node < 0) return std::nullopt;  // nothing after to take them
  try {
    check_fits(c, plan, nodes, o.kv_positions);
  } catch (const plan_error&) {
    return std::nullopt;
  }
  return plan;
}

std::string describe(const pipeline_plan& plan, const std::vector<node_info>& nodes) {
  std::string out;
  for (const plan_stage& s : plan) {
    if (!out.empty()) out += " | ";
    out += s.node < 0 ? std::string("coordinator") : nodes[s.node].address;
    if (s.layers.n_layers() > 0) {
      out += ' ';
      out += std::to_string(s.layers.layer_begin);
      out += '-';
      out += std::to_string(s.layers.layer_end - 1);
    } else {
      out += " no layers";
    }
    if (s.layers.embedding) out += " (embedding)";
    if (s.layers.head) out += " (head)";
  }
  return out;
}

}  // namespace mlxd::dist
