#include <iostream>
#include <iotbridge/queue.hpp>
#include <iotbridge/topic.hpp>
#include <iotbridge/topic_tree.hpp>

int main() {
  iotbridge::TopicTree<int> tree;
  tree.insert("home/+/temperature", 1);
  int hits = 0;
  tree.match("home/kitchen/temperature", [&](int v) { hits += v; });
  iotbridge::BoundedQueue<int> queue(4);
  queue.push(hits);
  bool ok = iotbridge::topic_matches("home/#", "home/kitchen") && queue.pop() == 1;
  std::cout << (ok ? "consumer ok" : "consumer FAILED") << "\n";
  return ok ? 0 : 1;
}
