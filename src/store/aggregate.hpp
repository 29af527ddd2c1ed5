// The in-process aggregation engine: MongoDB pipeline stages, expressions and
// $group accumulators evaluated on Documents. Used by Collection::aggregate's
// default (every backend without a native pipeline) and by the SQLite backend
// for the stages it cannot express in SQL; the SQLite backend also shares its
// accumulators and $dateTrunc so that both paths give the same answer.
// Anything it does not implement throws an Error naming the stage or operator.
// Stateless functions; an Accumulator belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "iotbridge/store/document.hpp"

namespace iotbridge::store::aggregate {

// Throws Error naming the first stage, accumulator or expression operator that
// is not implemented, or a stage that is malformed.
void validate(const std::vector<Document>& pipeline);

// Runs pipeline[first..] on `docs`, in order.
std::vector<Document> run(std::vector<Document> docs, const std::vector<Document>& pipeline, std::size_t first = 0);

// An aggregation expression ("$path", a literal, {"$op": ...}, {"k": expr})
// evaluated on one document; nullopt when it names a missing field.
std::optional<Value> evaluate(const Value& expression, const Document& doc);

// $dateTrunc in UTC: the start of the bin of `unit` ("year", "quarter",
// "month", "week", "day", "hour", "minute", "second", "millisecond") and
// `bin_size` holding `millis`; bins count from 2000-01-01 as MongoDB's do,
// weeks start on `start_of_week` (0 = Sunday ... 6 = Saturday).
std::int64_t date_trunc(std::int64_t millis, const std::string& unit, std::int64_t bin_size, int start_of_week = 0);
// "sunday", "sun", ... -> 0..6; throws Error otherwise.
int weekday_number(const std::string& name);

// One $group accumulator ($sum $avg $min $max $count $first $last $push).
class Accumulator {
 public:
  // Throws Error for an operator it does not implement.
  explicit Accumulator(const std::string& op);
  // A value of the accumulated expression, nullopt when it was missing.
  void add(const std::optional<Value>& value);
  // MongoDB's result: $sum of int32 stays int32 while it fits, $avg a double
  // or null, $min/$max null when every value was null or missing.
  Value result() const;
  static bool supported(const std::string& op);

 private:
  std::string op_;
  std::int64_t count_ = 0;
  std::int64_t int_sum_ = 0;
  double double_sum_ = 0;
  bool any_double_ = false, any_int64_ = false, overflow_ = false;
  std::int64_t numbers_ = 0;
  std::optional<Value> picked_;
  std::vector<Value> pushed_;
};

}  // namespace iotbridge::store::aggregate
