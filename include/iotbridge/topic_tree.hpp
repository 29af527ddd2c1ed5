/// @file
/// TopicTree<T>: a trie from MQTT subscription filters to values, answering
/// "which filters match this topic?" in time proportional to the topic's depth
/// rather than the number of filters. This is what a client uses to dispatch a
/// message to per-filter handlers.
/// Not thread-safe: guard it with a lock when it is written while being read.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "iotbridge/topic.hpp"

namespace iotbridge {

template <typename T>
class TopicTree {
 public:
  TopicTree() = default;
  TopicTree(TopicTree&&) noexcept = default;
  TopicTree& operator=(TopicTree&&) noexcept = default;
  TopicTree(const TopicTree&) = delete;
  TopicTree& operator=(const TopicTree&) = delete;

  /// Stores `value` under `filter`, replacing any earlier value. Returns true
  /// when the filter was new. Throws Error (topic) on an invalid filter. A
  /// `$share/group/filter` string is stored as itself; callers that dispatch by
  /// the inner filter insert parse_shared(...)->filter instead.
  bool insert(std::string_view filter, T value) {
    validate_filter(filter);
    Node* node = &root_;
    for_each_level(filter, [&](std::string_view level) {
      auto it = node->children.find(level);
      if (it == node->children.end()) it = node->children.emplace(std::string(level), std::make_unique<Node>()).first;
      node = it->second.get();
    });
    bool added = !node->value.has_value();
    node->value = std::move(value);
    if (added) ++size_;
    return added;
  }

  /// Removes the filter; returns true when it was there. Empty branches are pruned.
  bool remove(std::string_view filter) {
    // The path down, then pruning back up: no recursion, so a filter of 32k
    // levels (the most 65535 bytes hold) needs no stack per level.
    std::vector<std::pair<Node*, std::string_view>> path;  // (parent, level of the child below it)
    Node* node = &root_;
    bool found = true;
    for_each_level(filter, [&](std::string_view level) {
      if (!found) return;
      Node* next = child(*node, level);
      if (!next) {
        found = false;
        return;
      }
      path.emplace_back(node, level);
      node = next;
    });
    if (!found || !node->value) return false;
    node->value.reset();
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
      Node& below = *child(*it->first, it->second);
      if (below.value || !below.children.empty()) break;
      it->first->children.erase(it->first->children.find(it->second));
    }
    --size_;
    return true;
  }

  /// The value stored under exactly this filter, or nullptr.
  T* find(std::string_view filter) {
    Node* node = &root_;
    bool found = true;
    for_each_level(filter, [&](std::string_view level) {
      if (!found) return;
      auto it = node->children.find(level);
      if (it == node->children.end()) {
        found = false;
        return;
      }
      node = it->second.get();
    });
    return found && node->value ? &*node->value : nullptr;
  }
  const T* find(std::string_view filter) const { return const_cast<TopicTree*>(this)->find(filter); }

  /// Calls visit(value) for every stored filter that matches `topic` (each at
  /// most once). `topic` must be a valid topic name.
  template <typename Visitor>
  void match(std::string_view topic, Visitor&& visit) {
    // Depth first, exact level before '+', without recursion (a hostile
    // topic may have 32k levels): one branch is followed in place and the
    // other ('+' when both exist) waits on `later`, which allocates only then.
    struct Step {
      Node* node;
      std::string_view rest;  // what remains of the topic below `node`
      bool first_level;
    };
    std::vector<Step> later;
    Step step{&root_, topic, true};
    while (true) {
      // A filter starting with a wildcard never matches a topic starting with '$'.
      bool wildcards = !(step.first_level && !step.rest.empty() && step.rest.front() == '$');
      if (wildcards) {
        if (Node* hash = child(*step.node, "#"); hash && hash->value) visit(*hash->value);
      }
      auto slash = step.rest.find('/');
      std::string_view level = step.rest.substr(0, slash);
      bool last = slash == std::string_view::npos;
      std::string_view below = last ? std::string_view{} : step.rest.substr(slash + 1);
      Node* exact = child(*step.node, level);
      Node* plus = wildcards && level != "+" ? child(*step.node, "+") : nullptr;
      if (last) {
        for (Node* next : {exact, plus}) {
          if (!next) continue;
          if (next->value) visit(*next->value);
          // "a/#" also matches "a".
          if (Node* hash = child(*next, "#"); hash && hash->value) visit(*hash->value);
        }
      } else if (exact || plus) {
        if (exact && plus) later.push_back(Step{plus, below, false});
        step = Step{exact ? exact : plus, below, false};
        continue;
      }
      if (later.empty()) return;
      step = later.back();
      later.pop_back();
    }
  }

  /// True when at least one stored filter matches `topic`.
  bool matches_any(std::string_view topic) {
    bool any = false;
    match(topic, [&](T&) { any = true; });
    return any;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  void clear() {
    root_ = Node{};
    size_ = 0;
  }

 private:
  struct TransparentHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Node {
    std::unordered_map<std::string, std::unique_ptr<Node>, TransparentHash, std::equal_to<>> children;
    std::optional<T> value;

    Node() = default;
    Node(Node&&) noexcept = default;
    Node& operator=(Node&&) noexcept = default;
    // Destroys the branch below without recursion: a 32k-level branch would
    // otherwise take a few stack frames per level.
    ~Node() {
      std::vector<std::unique_ptr<Node>> doomed;
      auto take_children = [&doomed](Node& n) {
        for (auto& entry : n.children) doomed.push_back(std::move(entry.second));
        n.children.clear();
      };
      take_children(*this);
      while (!doomed.empty()) {
        std::unique_ptr<Node> n = std::move(doomed.back());
        doomed.pop_back();
        take_children(*n);
      }  // n goes with no children left
    }
  };

  template <typename F>
  static void for_each_level(std::string_view text, F&& f) {
    while (true) {
      auto slash = text.find('/');
      f(text.substr(0, slash));
      if (slash == std::string_view::npos) return;
      text.remove_prefix(slash + 1);
    }
  }

  Node* child(Node& node, std::string_view level) {
    auto it = node.children.find(level);
    return it == node.children.end() ? nullptr : it->second.get();
  }

  Node root_;
  std::size_t size_ = 0;
};

}  // namespace iotbridge
