// A small recursive-descent JSON checker that stops at the first problem and
// names it. It accepts exactly RFC 8259 JSON (what libbson parses); it is only
// run after libbson has refused a text, to explain why.
#include "store/json_diagnose.hpp"

#include <cctype>

namespace iotbridge::store::detail {
namespace {

struct Problem {
  std::size_t pos;
  std::string what;
};

class Checker {
 public:
  explicit Checker(std::string_view t) : t_(t) {}

  std::optional<Problem> run() {
    try {
      ws();
      value(0);
      ws();
      if (i_ < t_.size()) fail("unexpected '" + std::string(1, t_[i_]) + "' after the end of the JSON value");
    } catch (const Problem& p) {
      return p;
    }
    return std::nullopt;
  }

 private:
  [[noreturn]] void fail(std::string what) { throw Problem{i_, std::move(what)}; }
  [[noreturn]] void fail_at(std::size_t pos, std::string what) { throw Problem{pos, std::move(what)}; }

  bool at_end() const { return i_ >= t_.size(); }
  char peek() const { return at_end() ? '\0' : t_[i_]; }

  void ws() {
    while (!at_end() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }

  static bool word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' || c == '.';
  }

  std::string word() const {
    std::size_t j = i_;
    while (j < t_.size() && word_char(t_[j])) ++j;
    return std::string(t_.substr(i_, j - i_));
  }

  void value(int depth) {
    if (depth > 200) fail("nested more than 200 levels deep");
    ws();
    if (at_end()) fail("the text ends where a value is expected");
    char c = peek();
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return string();
    if (c == '\'') fail("strings need double quotes: \"text\", not 'text'");
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) return number();
    std::string w = word();
    if (w == "true" || w == "false" || w == "null") {
      i_ += w.size();
      return;
    }
    if (w == "ObjectId")
      fail("ObjectId(...) is mongo shell syntax; in JSON write {\"$oid\": \"5f1d7a9e8b3c4a2d1e0f9a8b\"}");
    if (w == "ISODate" || w == "Date" || w == "new")
      fail("ISODate(...) is mongo shell syntax; in JSON write {\"$date\": \"2026-01-31T12:00:00Z\"}");
    if (w == "NumberLong" || w == "NumberInt")
      fail(w + "(...) is mongo shell syntax; in JSON write {\"$numberLong\": \"42\"} or a plain number");
    if (w == "True" || w == "False" || w == "None") fail("'" + w + "' is Python; JSON writes true, false and null");
    if (w == "undefined" || w == "NaN" || w == "Infinity")
      fail("'" + w + "' is not JSON; write null, or {\"$numberDouble\": \"" + w + "\"}");
    if (!w.empty()) fail("strings need double quotes: \"" + w + "\"");
    if (c == '}' || c == ']' || c == ',') fail("a value is missing before '" + std::string(1, c) + "'");
    fail("unexpected '" + std::string(1, c) + "' where a value is expected");
  }

  void object(int depth) {
    std::size_t open = i_;
    ++i_;  // '{'
    ws();
    if (peek() == '}') {
      ++i_;
      return;
    }
    while (true) {
      ws();
      if (at_end()) fail_at(open, "the object opened here is not closed: a '}' is missing");
      char c = peek();
      if (c == '\'') fail("keys need double quotes: {\"" + quoted_word(1) + "\": ...}, not single quotes");
      if (c != '"') {
        std::string w = word();
        if (!w.empty()) fail("keys need double quotes: {\"" + w + "\": ...}");
        if (c == '}') fail("trailing comma before '}': remove the last ','");
        fail("unexpected '" + std::string(1, c) + "' where a key in double quotes is expected");
      }
      string();
      ws();
      if (peek() != ':') {
        if (at_end()) fail_at(open, "the object opened here is not closed: a '}' is missing");
        fail("a ':' is expected after the key");
      }
      ++i_;
      value(depth + 1);
      ws();
      if (at_end()) fail_at(open, "the object opened here is not closed: a '}' is missing");
      if (peek() == '}') {
        ++i_;
        return;
      }
      if (peek() != ',') fail("a ',' or '}' is expected after a value, found '" + std::string(1, peek()) + "'");
      ++i_;
      ws();
      if (peek() == '}') fail("trailing comma before '}': remove the last ','");
    }
  }

  void array(int depth) {
    std::size_t open = i_;
    ++i_;  // '['
    ws();
    if (peek() == ']') {
      ++i_;
      return;
    }
    while (true) {
      value(depth + 1);
      ws();
      if (at_end()) fail_at(open, "the array opened here is not closed: a ']' is missing");
      if (peek() == ']') {
        ++i_;
        return;
      }
      if (peek() != ',') fail("a ',' or ']' is expected after a value, found '" + std::string(1, peek()) + "'");
      ++i_;
      ws();
      if (peek() == ']') fail("trailing comma before ']': remove the last ','");
    }
  }

  // The text of a single-quoted token starting at i_ (for the hint).
  std::string quoted_word(std::size_t skip) const {
    std::size_t j = i_ + skip;
    while (j < t_.size() && t_[j] != '\'' && j - i_ < 40) ++j;
    return std::string(t_.substr(i_ + skip, j - i_ - skip));
  }

  void string() {
    std::size_t open = i_;
    ++i_;  // '"'
    while (!at_end()) {
      char c = t_[i_];
      if (c == '"') {
        ++i_;
        return;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("a control character inside a string: write it as \\n, \\t ...");
      if (c == '\\') {
        ++i_;
        if (at_end()) break;
        char e = t_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= t_.size() || !std::isxdigit(static_cast<unsigned char>(t_[i_ + k])))
              fail("\\u needs four hexadecimal digits");
          i_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          fail("unknown escape '\\" + std::string(1, e) + "' in a string");
        }
      }
      ++i_;
    }
    fail_at(open, "the string opened here is not closed: a '\"' is missing");
  }

  void number() {
    std::size_t start = i_;
    if (peek() == '-') ++i_;
    if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("a digit is expected after '-'");
    if (peek() == '0' && i_ + 1 < t_.size() && std::isdigit(static_cast<unsigned char>(t_[i_ + 1])))
      fail("numbers do not start with 0 in JSON");
    while (std::isdigit(static_cast<unsigned char>(peek()))) ++i_;
    if (peek() == '.') {
      ++i_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("a digit is expected after '.'");
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("a digit is expected in the exponent");
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++i_;
    }
    if (word_char(peek())) fail_at(start, "not a number: " + std::string(t_.substr(start, i_ - start + 1)) + "...");
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

}  // namespace

std::optional<std::string> diagnose_json(std::string_view text) {
  auto problem = Checker(text).run();
  if (!problem) return std::nullopt;
  std::string where = "at position " + std::to_string(problem->pos);
  if (problem->pos < text.size()) {
    std::size_t from = problem->pos > 12 ? problem->pos - 12 : 0;
    where += " (near '" + std::string(text.substr(from, problem->pos - from + 12)) + "')";
  }
  return where + ": " + problem->what;
}

}  // namespace iotbridge::store::detail
