// Pipeline planning: layer ranges from the command line, shares proportional to speed and capped by memory,
// overrides checked, and a clear error when the model does not fit.
#include <gtest/gtest.h>

#include "dist/survivor_plan.h"
#include "mlxd/dist/plan.h"

namespace mlxd::dist {
namespace {

models::llama_config config(int n_layers) {
  models::llama_config c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = 100;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.n_layers = n_layers;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 256;
  return c;
}

std::vector<int> layer_counts(const pipeline_plan& p) {
  std::vector<int> out;
  for (const plan_stage& s : p) out.push_back(s.layers.n_layers());
  return out;
}

void expect_contiguous(const pipeline_plan& p, int n_layers) {
  ASSERT_FALSE(p.empty());
  EXPECT_TRUE(p.front().layers.embedding);
  EXPECT_TRUE(p.back().layers.head);
  int next = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_EQ(p[i].layers.layer_begin, next);
    next = p[i].layers.layer_end;
    EXPECT_EQ(p[i].layers.embedding, i == 0);
    EXPECT_EQ(p[i].layers.head, i + 1 == p.size());
  }
  EXPECT_EQ(next, n_layers);
}

TEST(ParseLayerRanges, InclusiveTextToHalfOpenRanges) {
  EXPECT_EQ(parse_layer_ranges("0-11,12-23"), (std::vector<layer_range>{{0, 12}, {12, 24}}));
  EXPECT_EQ(parse_layer_ranges("5"), (std::vector<layer_range>{{5, 6}}));
  for (const char* bad : {"", "a-b", "3-1", "0-", "-2", "1-2x", "0-11;12-23"})
    EXPECT_THROW(parse_layer_ranges(bad), std::invalid_argument) << bad;
}

TEST(PlanPipeline, EqualNodesShareEvenlyAndAnyCountWorks) {
  for (int n_nodes : {1, 2, 3, 5}) {
    std::vector<node_info> nodes(n_nodes, node_info{"n", 4, 0, 0});
    const pipeline_plan p = plan_pipeline(config(12), nodes, {});
    expect_contiguous(p, 12);
    for (int c : layer_counts(p)) EXPECT_TRUE(c == 12 / n_nodes || c == 12 / n_nodes + 1);
  }
}

TEST(PlanPipeline, SharesFollowSpeedAndMemoryCapsMoveTheSurplus) {
  std::vector<node_info> nodes = {{"fast", 8, 0, 30}, {"slow", 4, 0, 10}};
  EXPECT_EQ(layer_counts(plan_pipeline(config(8), nodes, {})), (std::vector<int>{6, 2}));
  // The fast node can hold only 3 layers (plus the embedding): the rest goes to the slow one.
  const models::llama_config c = config(8);
  const uint64_t layer = stage_weight_bytes(c, {0, 1, false, false});
  nodes[0].memory_bytes = stage_weight_bytes(c, {0, 0, true, false}) + 3 * layer + layer / 2;
  const pipeline_plan p = plan_pipeline(c, nodes, {});
  EXPECT_EQ(layer_counts(p), (std::vector<int>{3, 5}));
  expect_contiguous(p, 8);
}

// The last stage computes the LM head too, so it gets fewer layers: here the head weighs 4 layers, and 12
// layers over two equal nodes are 8 + (4 + head) rather than 6 + (6 + head).
TEST(PlanPipeline, TheHeadCountsAsWorkOfTheLastStage) {
  models::llama_config c = config(12);
  c.vocab_size =
      static_cast<int>(4 * stage_weight_bytes(c, {0, 1, false, false}) / sizeof(float) / c.hidden_size);
  const double head = static_cast<double>(stage_weight_bytes(c, {0, 0, false, true})) /
                      static_cast<double>(stage_weight_bytes(c, {0, 1, false, false}));
  ASSERT_NEAR(head, 4.0, 0.05);
  std::vector<node_info> nodes(2, node_info{"n", 4, 0, 50});
  EXPECT_EQ(layer_counts(plan_pipeline(c, nodes, {})), (std::vector<int>{8, 4}));
  // A head heavier than the last node's share of the work leaves it only the head.
  c.vocab_size *= 4;
  EXPECT_EQ(layer_counts(plan_pipeline(c, nodes, {})), (std::vector<int>{12, 0}));
}

// Workers reached at one host share its cores: they share its work as equals, at the best speed measured
// there, whatever each measured while the others were measuring too.
TEST(PlanPipeline, NodesOfOneHostAreEquallyFast) {
  const models::llama_config c = config(8);
  std::vector<node_info> nodes = {{"10.0.0.2:8101", 4, 0, 10}, {"10.0.0.2:8102", 4, 0, 30}};
  EXPECT_EQ(layer_counts(plan_pipeline(c, nodes, {})), (std::vector<int>{4, 4}));
  nodes[1].address = "10.0.0.3:8101";  // two hosts: the faster one takes more
  EXPECT_EQ(layer_counts(plan_pipeline(c, nodes, {})), (std::vector<int>{2, 6}));
  nodes = {{"[::1]:8101", 4, 0, 10}, {"[::1]:8102", 4, 0, 30}, {"[::2]:8101", 4, 0, 10}};
  EXPECT_EQ(layer_counts(plan_pipeline(c, nodes, {})), (std::vector<int>{4, 3, 1}));
}

TEST(PlanPipeline, KvRoomCountsAgainstMemory) {
  const models::llama_config c = config(4);
  const uint64_t layer = stage_weight_bytes(c, {0, 1, false, false});
  const uint64_t head = stage_weight_bytes(c, {0, 0, true, true});
  std::vector<node_info> nodes = {{"a", 1, head + 4 * layer + 100, 0}};
  EXPECT_NO_THROW(plan_pipeline(c, nodes, {}));
  plan_options o;
  o.kv_positions = 256;
  EXPECT_THROW(plan_pipeline(c, nodes, o), plan_error);
}

TEST(PlanPipeline, TooLittleMemoryIsAClearError) {
  const models::llama_config c = config(6);
  std::vector<node_info> nodes = {{"10.0.0.2:8101", 1, 200000, 0}, {"10.0.0.3:8101", 1, 200000, 0}};
  try {
    plan_pipeline(c, nodes, {});
    FAIL() << "planned a model that does not fit";
  } catch (const plan_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("does not fit"), std::string::npos) << m;
    EXPECT_NE(m.find("10.0.0.3:8101"), std::string::npos) << m;
  }
}

TEST(PlanPipeline, OverridesAreCheckedAndHonoured) {
  const models::llama_config c = config(6);
  std::vector<node_info> nodes(3, node_info{"n", 1, 0, 0});
  plan_options o;
  o.layers = parse_layer_ranges("0-0,1-4,5");
  EXPECT_EQ(layer_counts(plan_pipeline(c, nodes, o)), (std::vector<int>{1, 4, 1}));
  o.layers = parse_layer_ranges("0-1,3-4,5");
  EXPECT_THROW(plan_pipeline(c, nodes, o), plan_error);  // a gap
  o.layers = parse_layer_ranges("0-1,2-4");
  EXPECT_THROW(plan_pipeline(c, nodes, o), plan_error);  // two ranges for three workers
  o.layers = parse_layer_ranges("0-1,2-3,4-6");
  EXPECT_THROW(plan_pipeline(c, nodes, o), plan_error);  // past the last layer
}

TEST(PlanPipeline, CoordinatorLayersComeFirstWithTheEmbedding) {
  const models::llama_config c = config(6);
  std::vector<node_info> nodes(2, node_info{"n", 1, 0, 0});
  plan_options o;
  o.coordinator_layers = layer_range{0, 2};
  const pipeline_plan p = plan_pipeline(c, nodes, o);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].node, -1);
  EXPECT_EQ(layer_counts(p), (std::vector<int>{2, 2, 2}));
  expect_contiguous(p, 6);
  EXPECT_EQ(describe(p, nodes), "coordinator 0-1 (embedding) | n 2-3 | n 4-5 (head)");
  o.coordinator_layers = layer_range{1, 3};
  EXPECT_THROW(plan_pipeline(c, nodes, o), plan_error);
}

// "a 0-1 (embedding) | c 4-5 (head)" style, for plans over named nodes.
std::string ranges(const std::optional<pipeline_plan>& p, const std::vector<node_info>& nodes) {
  return p ? describe(*p, nodes) : std::string("none");
}

TEST(PlanKeepingSurvivors, ANeighbourTakesTheLostLayersAndTheRestStay) {
  const models::llama_config c = config(6);
  const std::vector<node_info> before = {{"a", 1, 0, 0}, {"b", 1, 0, 0}, {"c", 1, 0, 0}};
  const pipeline_plan p = plan_pipeline(c, before, {});
  ASSERT_EQ(describe(p, before), "a 0-1 (embedding) | b 2-3 | c 4-5 (head)");
  const std::vector<node_info> ac = {before[0], before[2]}, bc = {before[1], before[2]},
                               ab = {before[0], before[1]};
  // The stage before takes them; the stage after only when none comes before (and then it embeds).
  EXPECT_EQ(ranges(plan_keeping_survivors(c, p, before, ac, {}), ac), "a 0-3 (embedding) | c 4-5 (head)");
  EXPECT_EQ(ranges(plan_keeping_survivors(c, p, before, bc, {}), bc), "b 0-3 (embedding) | c 4-5 (head)");
  EXPECT_EQ(ranges(plan_keeping_survivors(c, p, before, ab, {}), ab), "a 0-1 (embedding) | b 2-5 (head)");
  const std::vector<node_info> only_c = {before[2]};
  EXPECT_EQ(ranges(plan_keeping_survivors(c, p, before, only_c, {}), only_c), "c 0-5 (embedding) (head)");
  // Nobody lost: the same plan, over nodes listed in any order.
  const std::vector<node_info> cba = {before[2], before[1], before[0]};
  EXPECT_EQ(ranges(plan_keeping_survivors(c, p, before, cba, {}), cba), describe(p, before));
  const std::optional<pipeline_plan> same = plan_keeping_survivors(c, p, before, cba, {});
  ASSERT_TRUE(same);
  expect_contiguous(*same, 6);
}

TEST(PlanKeepingSurvivors, NewNodesTooLittleMemoryOrNoWorkerLeftMeanAFullPlan) {
  const models::llama_config c = config(6);
  const std::vector<node_info> before = {{"a", 1, 0, 0}, {"b", 1, 0, 0}, {"c", 1, 0, 0}};
  const pipeline_plan p = plan_pipeline(c, before, {});
  EXPECT_FALSE(plan_keeping_survivors(c, p, before, {before[0], before[2], {"d", 1, 0, 0}}, {}));
  EXPECT_FALSE(plan_keeping_survivors(c, p, before, {}, {}));
  // a would need 4 layers and holds 3.
  const uint64_t layer = stage_weight_bytes(c, {0, 1, false, false});
  node_info small_a = before[0];
  small_a.memory_bytes = stage_weight_bytes(c, {0, 0, true, false}) + 3 * layer + layer / 2;
  EXPECT_FALSE(plan_keeping_survivors(c, p, before, {small_a, before[2]}, {}));
  // The coordinator's own stage never grows: the worker after the lost one takes its layers.
  plan_options o;
  o.coordinator_layers = layer_range{0, 2};
  const pipeline_plan q = plan_pipeline(c, {before[0], before[1]}, o);
  ASSERT_EQ(describe(q, before), "coordinator 0-1 (embedding) | a 2-3 | b 4-5 (head)");
  const std::vector<node_info> only_b = {before[1]};
  EXPECT_EQ(ranges(plan_keeping_survivors(c, q, {before[0], before[1]}, only_b, o), only_b),
            "coordinator 0-1 (embedding) | b 2-5 (head)");
  const std::vector<node_info> only_a = {before[0]};
  EXPECT_EQ(ranges(plan_keeping_survivors(c, q, {before[0], before[1]}, only_a, o), only_a),
            "coordinator 0-1 (embedding) | a 2-5 (head)");
}

}  // namespace
}  // namespace mlxd::dist
