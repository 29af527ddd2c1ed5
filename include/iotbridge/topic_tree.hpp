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
    if (!remove_below(root_, filter)) return false;
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
    match_below(root_, topic, /*first_level=*/true, visit);
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

  /// `rest` is what remains of the topic below `node`.
  template <typename Visitor>
  void match_below(Node& node, std::string_view rest, bool first_level, Visitor& visit) {
    // A filter starting with a wildcard never matches a topic starting with '$'.
    bool wildcards = !(first_level && !rest.empty() && rest.front() == '$');
    if (wildcards) {
      if (Node* hash = child(node, "#"); hash && hash->value) visit(*hash->value);
    }
    auto slash = rest.find('/');
    std::string_view level = rest.substr(0, slash);
    std::string_view below = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    bool last = slash == std::string_view::npos;
    auto descend = [&](Node* next) {
      if (!next) return;
      if (last) {
        if (next->value) visit(*next->value);
        // "a/#" also matches "a".
        if (Node* hash = child(*next, "#"); hash && hash->value) visit(*hash->value);
      } else {
        match_below(*next, below, false, visit);
      }
    };
    descend(child(node, level));
    if (wildcards && level != "+") descend(child(node, "+"));
  }

  bool remove_below(Node& node, std::string_view rest) {
    auto slash = rest.find('/');
    std::string_view level = rest.substr(0, slash);
    auto it = node.children.find(level);
    if (it == node.children.end()) return false;
    Node& next = *it->second;
    bool removed;
    if (slash == std::string_view::npos) {
      removed = next.value.has_value();
      next.value.reset();
    } else {
      removed = remove_below(next, rest.substr(slash + 1));
    }
    if (removed && !next.value && next.children.empty()) node.children.erase(it);
    return removed;
  }

  Node root_;
  std::size_t size_ = 0;
};

}  // namespace iotbridge
