// Topic and filter validation + matching, cross-checked against libmosquitto.
//
// Input: "FILTER\nTOPIC" (split at the first newline; without one, both are
// the whole input). Checks, trapping on any disagreement:
//  - topic_problem / filter_problem agree with libmosquitto's
//    mosquitto_validate_utf8 + mosquitto_pub_topic_check / mosquitto_sub_topic_check,
//    with two documented differences: MQTT refuses an empty string (libmosquitto's
//    checks accept it), and a "$share/GROUP/FILTER" filter must have a non-empty
//    group without wildcards and a non-empty inner filter, which libmosquitto's
//    per-level check does not look at; there ours may only be stricter.
//  - for a valid topic and a valid (non-shared) filter, topic_matches equals
//    mosquitto_topic_matches_sub (which also implements the rule that '+' and '#'
//    in the first level do not match a topic starting with '$'), and a
//    TopicTree holding the filter agrees with both.
//  - on any bytes, topic_matches and parse_shared neither crash nor throw
//    anything but Error.
#include <mosquitto.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "iotbridge/error.hpp"
#include "iotbridge/topic.hpp"
#include "iotbridge/topic_tree.hpp"

namespace {

[[noreturn]] void mismatch(const char* what, const std::string& a, const std::string& b = {}) {
  std::fprintf(stderr, "fuzz_topic: %s\n  a (%zu bytes): '%s'\n  b (%zu bytes): '%s'\n", what, a.size(), a.c_str(),
               b.size(), b.c_str());
  std::abort();
}

// libmosquitto reads C strings: an embedded NUL would end the text early, and
// MQTT forbids NUL anyway, so such strings are invalid on both sides.
bool mosq_utf8_ok(const std::string& s) {
  return s.find('\0') == std::string::npos &&
         mosquitto_validate_utf8(s.c_str(), static_cast<int>(s.size())) == MOSQ_ERR_SUCCESS;
}
bool mosq_topic_ok(const std::string& s) {
  return !s.empty() && mosq_utf8_ok(s) && mosquitto_pub_topic_check(s.c_str()) == MOSQ_ERR_SUCCESS;
}
bool mosq_filter_ok(const std::string& s) {
  return !s.empty() && mosq_utf8_ok(s) && mosquitto_sub_topic_check(s.c_str()) == MOSQ_ERR_SUCCESS;
}

void check_validity(const std::string& s) {
  bool topic_ok = !iotbridge::topic_problem(s).has_value();
  bool filter_ok = !iotbridge::filter_problem(s).has_value();
  if (topic_ok != mosq_topic_ok(s))
    mismatch(topic_ok ? "topic valid for us, not for libmosquitto" : "topic invalid for us only", s);
  if (s.starts_with("$share/")) {
    if (filter_ok && !mosq_filter_ok(s)) mismatch("shared filter valid for us, not for libmosquitto", s);
  } else if (filter_ok != mosq_filter_ok(s)) {
    mismatch(filter_ok ? "filter valid for us, not for libmosquitto" : "filter invalid for us only", s);
  }
  // validate_* throw exactly when *_problem reports.
  bool threw = false;
  try {
    iotbridge::validate_topic(s);
  } catch (const iotbridge::Error&) {
    threw = true;
  }
  if (threw == topic_ok) mismatch("validate_topic disagrees with topic_problem", s);
  threw = false;
  try {
    iotbridge::validate_filter(s);
  } catch (const iotbridge::Error&) {
    threw = true;
  }
  if (threw == filter_ok) mismatch("validate_filter disagrees with filter_problem", s);
  try {
    (void)iotbridge::parse_shared(s);
  } catch (const iotbridge::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto nl = input.find('\n');
  std::string filter(nl == std::string_view::npos ? input : input.substr(0, nl));
  std::string topic(nl == std::string_view::npos ? input : input.substr(nl + 1));

  check_validity(filter);
  if (topic != filter) check_validity(topic);

  bool ours = iotbridge::topic_matches(filter, topic);  // must not crash on any bytes
  if (iotbridge::topic_problem(topic) || iotbridge::filter_problem(filter) || filter.starts_with("$share/")) return 0;

  bool theirs = false;
  if (mosquitto_topic_matches_sub(filter.c_str(), topic.c_str(), &theirs) != MOSQ_ERR_SUCCESS)
    mismatch("libmosquitto refuses a filter/topic pair we accept", filter, topic);
  if (ours != theirs)
    mismatch(ours ? "we match, libmosquitto does not" : "libmosquitto matches, we do not", filter, topic);

  iotbridge::TopicTree<int> tree;
  tree.insert(filter, 1);
  if (tree.matches_any(topic) != ours) mismatch("TopicTree disagrees with topic_matches", filter, topic);
  return 0;
}
