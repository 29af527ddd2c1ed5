// How an iotbridge-db verb that runs from its CLI11 callback (plot, serve,
// quarantine) ends: its error printed after `label` ("iotbridge-db plot"),
// then the parse ended with CLI::RuntimeError(exit code), which iotbridge-db
// returns: 0 success (or what the verb returned), 1 failure, 2 usage (an
// Error of category config). Header-only; call from main's thread.
#pragma once

#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string_view>

#include "iotbridge/error.hpp"

namespace iotbridge::cli {

template <typename Verb>
[[noreturn]] void run_verb(std::string_view label, Verb&& verb) {
  int code = 0;
  try {
    code = verb();
  } catch (const Error& e) {
    std::cerr << label << ": " << e.what() << "\n";
    code = e.category() == ErrorCategory::config ? 2 : 1;
  } catch (const std::exception& e) {
    std::cerr << label << ": " << e.what() << "\n";
    code = 1;
  }
  std::cout.flush();
  throw CLI::RuntimeError(code);
}

}  // namespace iotbridge::cli
