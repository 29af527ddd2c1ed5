// Uses the store component of a build without MongoDB: SQLite works, and a
// mongodb:// URI is refused in words. Prints "store consumer ok".
#include <iostream>
#include <iotbridge/store.hpp>

int main() {
  using namespace iotbridge;
  auto db = store::open_store("sqlite::memory:");
  auto sensors = db->collection("iot_service", "sensors");
  sensors->insert_one(store::Document::from_json(R"({"topic": "home/kitchen/temperature", "value": 21.5})"));
  bool sqlite_ok = sensors->count_documents() == 1;
  std::string refusal;
  try {
    store::open_store("mongodb://user:secret@localhost:27017/");
  } catch (const Error& e) {
    refusal = e.what();
  }
  bool refused =
      refusal.find("has no MongoDB support") != std::string::npos && refusal.find("secret") == std::string::npos;
  if (!refused) std::cout << "mongodb:// gave: '" << refusal << "'\n";
  std::cout << (sqlite_ok && refused ? "store consumer ok" : "store consumer FAILED") << "\n";
  return sqlite_ok && refused ? 0 : 1;
}
