// TopicTree: exact behaviour on small cases, then a randomized comparison with
// a linear scan over thousands of filters and topics.
#include "iotbridge/topic_tree.hpp"

#include <mosquitto.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "iotbridge/error.hpp"
#include "iotbridge/topic.hpp"

using namespace iotbridge;

namespace {
std::set<std::string> matched(TopicTree<std::string>& tree, std::string_view topic) {
  std::set<std::string> out;
  tree.match(topic, [&](const std::string& v) { CHECK(out.insert(v).second); });
  return out;
}
}  // namespace

TEST_CASE("TopicTree dispatches a topic to every matching filter once", "[topic_tree]") {
  TopicTree<std::string> tree;
  for (const char* f : {"home/living_room/+", "home/+/light", "#", "home/#", "home/kitchen/light", "+/+/+", "$SYS/#",
                        "a/#", "a/+", "/+", "+/"})
    CHECK(tree.insert(f, f));
  CHECK(tree.size() == 11);

  CHECK(matched(tree, "home/living_room/light") ==
        std::set<std::string>{"home/living_room/+", "home/+/light", "#", "home/#", "+/+/+"});
  CHECK(matched(tree, "home/kitchen/light") ==
        std::set<std::string>{"home/+/light", "#", "home/#", "home/kitchen/light", "+/+/+"});
  CHECK(matched(tree, "home") == std::set<std::string>{"#", "home/#"});
  CHECK(matched(tree, "$SYS/broker/load") == std::set<std::string>{"$SYS/#"});
  CHECK(matched(tree, "a") == std::set<std::string>{"#", "a/#"});
  CHECK(matched(tree, "a/") == std::set<std::string>{"#", "a/#", "a/+", "+/"});
  CHECK(matched(tree, "/") == std::set<std::string>{"#", "/+", "+/"});
}

TEST_CASE("TopicTree insert replaces, find and remove work, branches are pruned", "[topic_tree]") {
  TopicTree<int> tree;
  CHECK(tree.insert("a/b/c", 1));
  CHECK_FALSE(tree.insert("a/b/c", 2));
  CHECK(tree.size() == 1);
  REQUIRE(tree.find("a/b/c") != nullptr);
  CHECK(*tree.find("a/b/c") == 2);
  CHECK(tree.find("a/b") == nullptr);
  CHECK(tree.insert("a/b", 3));
  CHECK(tree.remove("a/b/c"));
  CHECK_FALSE(tree.remove("a/b/c"));
  CHECK_FALSE(tree.remove("x"));
  CHECK(tree.find("a/b") != nullptr);
  CHECK(tree.matches_any("a/b"));
  CHECK_FALSE(tree.matches_any("a/b/c"));
  CHECK(tree.remove("a/b"));
  CHECK(tree.empty());
  CHECK_THROWS_AS(tree.insert("a/#/b", 1), Error);
}

TEST_CASE("TopicTree agrees with a linear scan on random filters and topics", "[topic_tree][random]") {
  std::mt19937 rng(20261121);
  const std::vector<std::string> words = {"a", "b", "c", "", "$SYS", "home", "x"};
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  auto random_topic = [&] {
    std::string t;
    std::size_t levels = 1 + pick(4);
    for (std::size_t i = 0; i < levels; ++i) {
      if (i) t += '/';
      t += words[pick(words.size())];
    }
    return t;
  };
  auto random_filter = [&] {
    std::string f;
    std::size_t levels = 1 + pick(4);
    for (std::size_t i = 0; i < levels; ++i) {
      if (i) f += '/';
      std::size_t r = pick(10);
      if (r < 3)
        f += '+';
      else if (r == 3 && i + 1 == levels)
        f += '#';
      else
        f += words[pick(words.size())];
    }
    return f;
  };

  TopicTree<std::string> tree;
  std::set<std::string> filters;
  while (filters.size() < 2000) {
    std::string f = random_filter();
    if (!filter_problem(f) && filters.insert(f).second) tree.insert(f, f);
  }
  int checked = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string topic = random_topic();
    if (topic_problem(topic)) continue;
    std::set<std::string> expected;
    for (const auto& f : filters) {
      bool match = topic_matches(f, topic);
      if (match) expected.insert(f);
      if (i % 10 == 0) {  // the scan's matcher agrees with libmosquitto's (a tenth of the topics: 1M pairs)
        bool mosq = false;
        REQUIRE(mosquitto_topic_matches_sub(f.c_str(), topic.c_str(), &mosq) == MOSQ_ERR_SUCCESS);
        if (mosq != match) FAIL("filter '" << f << "' topic '" << topic << "': mosquitto says " << mosq);
      }
    }
    INFO("topic '" << topic << "'");
    REQUIRE(matched(tree, topic) == expected);
    ++checked;
  }
  CHECK(checked > 4000);

  // Removing half of the filters keeps the two in agreement.
  std::vector<std::string> all(filters.begin(), filters.end());
  for (std::size_t i = 0; i < all.size(); i += 2) {
    REQUIRE(tree.remove(all[i]));
    filters.erase(all[i]);
  }
  CHECK(tree.size() == filters.size());
  for (int i = 0; i < 1000; ++i) {
    std::string topic = random_topic();
    if (topic_problem(topic)) continue;
    std::set<std::string> expected;
    for (const auto& f : filters)
      if (topic_matches(f, topic)) expected.insert(f);
    REQUIRE(matched(tree, topic) == expected);
  }
}
