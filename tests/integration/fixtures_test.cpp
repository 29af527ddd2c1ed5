// The server fixtures themselves: a real Mosquitto (plain, password, ACL, TLS)
// and a real MongoDB-compatible server, reached with the C libraries directly.
#include <fcntl.h>
#include <mongoc/mongoc.h>
#include <mosquitto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "servers.hpp"

using namespace iotbridge::test;

namespace {

// Connects with libmosquitto; returns the CONNACK result (0 = accepted) or a
// negative MOSQ_ERR_* when the connection itself failed.
int try_connect(int port, const char* user = nullptr, const char* password = nullptr,
                const MosquittoServer* tls_server = nullptr, const char* cafile = nullptr) {
  mosquitto_lib_init();
  struct State {
    int rc = -1000;
  } state;
  mosquitto* m = mosquitto_new(nullptr, true, &state);
  mosquitto_connect_callback_set(m, [](mosquitto*, void* ud, int rc) { static_cast<State*>(ud)->rc = rc; });
  if (user) mosquitto_username_pw_set(m, user, password);
  if (tls_server) mosquitto_tls_set(m, cafile, nullptr, nullptr, nullptr, nullptr);
  int rc = mosquitto_connect(m, "127.0.0.1", port, 10);
  if (rc == MOSQ_ERR_SUCCESS) {
    for (int i = 0; i < 100 && state.rc == -1000; ++i) {
      if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS && state.rc == -1000) {
        state.rc = -MOSQ_ERR_CONN_LOST;
        break;
      }
    }
    rc = state.rc;
  } else {
    rc = -rc;
  }
  mosquitto_destroy(m);
  return rc;
}

}  // namespace

TEST_CASE("Process: a child started from a short-lived thread outlives that thread", "[fixture]") {
  // PR_SET_PDEATHSIG follows the forking *thread*; the fixture forks on one
  // long-lived thread so that a server restarted by a helper thread survives.
  TempDir dir;
  auto fifo = dir / "go";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::unique_ptr<Process> child;
  int fd = -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::thread([&] {
    child = std::make_unique<Process>(
        std::vector<std::string>{"/bin/sh", "-c", "read line < '" + fifo.string() + "'; echo \"got $line\""},
        dir / "child.log");
    // Wait until the child runs the shell (past its prctl) before this thread ends.
    while ((fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK)) < 0 && child->alive() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
  }).join();
  REQUIRE(fd >= 0);
  ::signal(SIGPIPE, SIG_IGN);  // a dead reader must fail the write, not the test process
  CHECK(::write(fd, "go\n", 3) == 3);
  ::close(fd);
  while (child->alive() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  std::ifstream log(dir / "child.log");
  std::string line;
  std::getline(log, line);
  CHECK(line == "got go");
}

TEST_CASE("free_port and wait_for_port", "[fixture]") {
  int port = free_port();
  CHECK(port > 1024);
  CHECK_FALSE(wait_for_port(port, std::chrono::milliseconds(20)));
}

TEST_CASE("Mosquitto fixture: a broker on a free port carries a message, and stops by PID", "[fixture][mosquitto]") {
  MosquittoServer broker;
  REQUIRE(broker.pid() > 0);
  CHECK(try_connect(broker.port()) == 0);

  // A retained message reaches the subscriber whenever it subscribes: no race.
  std::string port_text = std::to_string(broker.port());
  REQUIRE(run_command({"mosquitto_pub", "-h", "127.0.0.1", "-p", port_text, "-t", "fixture/a", "-m", "24.5", "-r"}) ==
          0);
  std::string received;
  REQUIRE(
      run_command({"mosquitto_sub", "-h", "127.0.0.1", "-p", port_text, "-t", "fixture/#", "-C", "1", "-v", "-W", "10"},
                  &received) == 0);
  CHECK(received == "fixture/a 24.5\n");

  int port = broker.port();
  broker.stop();
  CHECK_FALSE(wait_for_port(port, std::chrono::milliseconds(20)));
  broker.start();  // same port again
  CHECK(try_connect(port) == 0);
}

TEST_CASE("Mosquitto fixture: password file accepts the right password only", "[fixture][mosquitto][auth]") {
  MosquittoServer::Options o;
  o.users = {{"sensor", "s3cret"}};
  MosquittoServer broker(o);
  CHECK(try_connect(broker.port(), "sensor", "s3cret") == 0);
  CHECK(try_connect(broker.port(), "sensor", "wrong") != 0);
  CHECK(try_connect(broker.port()) != 0);
}

TEST_CASE("Mosquitto fixture: ACL file is applied", "[fixture][mosquitto][acl]") {
  MosquittoServer::Options o;
  o.users = {{"reader", "pw"}, {"writer", "pw"}};
  o.acl = "user reader\ntopic read allowed/#\n\nuser writer\ntopic readwrite #\n";
  MosquittoServer broker(o);
  std::string port = std::to_string(broker.port());
  auto pub = [&](const char* user, const char* topic) {
    return run_command({"mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-u", user, "-P", "pw", "-t", topic, "-m",
                        topic, "-r", "-q", "1"});
  };
  REQUIRE(pub("writer", "secret/x") == 0);
  REQUIRE(pub("writer", "allowed/x") == 0);
  REQUIRE(pub("reader", "allowed/y") == 0);  // accepted on the wire, dropped by the ACL (no write right)
  // Retained messages the reader may see arrive; the others do not. -W ends the wait.
  std::string seen;
  run_command({"mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-u", "reader", "-P", "pw", "-t", "#", "-v", "-W", "2"},
              &seen);
  CHECK(seen == "allowed/x allowed/x\n");
}

TEST_CASE("Mosquitto fixture: TLS listener with certificates made at test time", "[fixture][mosquitto][tls]") {
  MosquittoServer::Options o;
  o.tls = true;
  MosquittoServer broker(o);
  CHECK(try_connect(broker.tls_port(), nullptr, nullptr, &broker, broker.ca_file().c_str()) == 0);
  CHECK(try_connect(broker.tls_port(), nullptr, nullptr, &broker, broker.other_ca_file().c_str()) != 0);
}

TEST_CASE("MongoDB-compatible server fixture answers ping, insert and find", "[fixture][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  std::string uri = test_mongo_uri();
  mongoc_init();
  bson_error_t error;
  mongoc_uri_t* u = mongoc_uri_new_with_error(uri.c_str(), &error);
  REQUIRE(u != nullptr);
  mongoc_client_t* client = mongoc_client_new_from_uri(u);
  std::string db = unique_db_name();
  mongoc_collection_t* coll = mongoc_client_get_collection(client, db.c_str(), "sensors");

  bson_t* ping = BCON_NEW("ping", BCON_INT32(1));
  bool ok = mongoc_client_command_simple(client, "admin", ping, nullptr, nullptr, &error);
  INFO(error.message);
  CHECK(ok);
  bson_t* doc = BCON_NEW("topic", BCON_UTF8("iot/t"), "value", BCON_DOUBLE(24.5));
  CHECK(mongoc_collection_insert_one(coll, doc, nullptr, nullptr, &error));
  bson_t* filter = BCON_NEW("value", "{", "$gt", BCON_DOUBLE(24.1), "}");
  int64_t n = mongoc_collection_count_documents(coll, filter, nullptr, nullptr, nullptr, &error);
  CHECK(n == 1);

  mongoc_database_t* database = mongoc_client_get_database(client, db.c_str());
  mongoc_database_drop(database, nullptr);
  mongoc_database_destroy(database);
  bson_destroy(filter);
  bson_destroy(doc);
  bson_destroy(ping);
  mongoc_collection_destroy(coll);
  mongoc_client_destroy(client);
  mongoc_uri_destroy(u);
}

TEST_CASE("MongoDB-compatible server fixture can be stopped and restarted with its data", "[fixture][mongo]") {
  IOTBRIDGE_REQUIRE_MONGO();
  // Fault tests need a server of their own to stop, so this one always starts FerretDB.
  MongoServer server;
  int port = server.port();
  REQUIRE(wait_for_port(port, std::chrono::seconds(1)));
  server.stop();
  CHECK_FALSE(wait_for_port(port, std::chrono::milliseconds(20)));
  server.start();
  CHECK(wait_for_port(port, std::chrono::seconds(1)));
}

// ---- a server that cannot be had fails the test, saying which and why -------

namespace {

// Runs one test case of this very binary in a child process with `env`
// changes (NAME=VALUE sets, -NAME unsets); returns the exit code and puts
// stdout and stderr together into *output.
int run_self(const std::string& test_name, const std::vector<std::string>& env, std::string* output) {
  std::vector<std::string> argv = {"/usr/bin/env"};
  for (const auto& e : env)  // env reads its -u options before the first NAME=VALUE
    if (e.starts_with("-")) {
      argv.push_back("-u");
      argv.push_back(e.substr(1));
    }
  for (const auto& e : env)
    if (!e.starts_with("-")) argv.push_back(e);
  std::string self = fs::read_symlink("/proc/self/exe").string();
  for (const char* a : {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1"}) argv.push_back(a);
  std::string spec;  // Catch reads ',' and '[' in a test spec; escaped as catch_discover_tests does
  for (char c : test_name) {
    if (c == ',' || c == '[' || c == ']') spec += '\\';
    spec += c;
  }
  // -w NoTests: a name that matches nothing fails instead of passing unrun.
  for (const std::string& a : {self, spec, std::string("-w"), std::string("NoTests")}) argv.push_back(a);
  return run_command(argv, output);
}

const char* const kMongoFixtureTest = "MongoDB-compatible server fixture answers ping, insert and find";
const char* const kSkipped = "IOTBRIDGE-SKIPPED:";

}  // namespace

// Hidden ("[.]": not run by ctest) halves of the next test: a test case whose
// MongoDB part is opted out after its first part passed, or failed.
TEST_CASE("fixture self-test: passes then opts out of MongoDB", "[.][selftest]") {
  CHECK(std::string("sqlite") == "sqlite");
  IOTBRIDGE_REQUIRE_MONGO();
  FAIL("the MongoDB part ran although IOTBRIDGE_SKIP_MONGO=1");
}

TEST_CASE("fixture self-test: fails then opts out of MongoDB", "[.][selftest]") {
  CHECK(std::string("sqlite") == "a failure before the MongoDB part");
  IOTBRIDGE_REQUIRE_MONGO();
}

TEST_CASE("IOTBRIDGE_SKIP_MONGO=1: the test is reported skipped, never passed, and a failure stays a failure",
          "[fixture][mongo][optout]") {
  const std::vector<std::string> opt_out = {"-CI", "-IOTBRIDGE_TEST_MONGO_URI", "IOTBRIDGE_SKIP_MONGO=1",
                                            "IOTBRIDGE_FERRETDB=/nonexistent/ferretdb"};
  std::string out;
  CHECK(run_self(kMongoFixtureTest, opt_out, &out) == 0);
  INFO(out);
  CHECK(out.find(std::string(kSkipped) + " MongoDB tests opted out (IOTBRIDGE_SKIP_MONGO=1)") != std::string::npos);

  out.clear();
  CHECK(run_self("fixture self-test: passes then opts out of MongoDB", opt_out, &out) == 0);
  CHECK(out.find(kSkipped) != std::string::npos);

  // ctest's skip expression overrides the exit code: the line must not appear.
  out.clear();
  CHECK(run_self("fixture self-test: fails then opts out of MongoDB", opt_out, &out) != 0);
  CHECK(out.find(kSkipped) == std::string::npos);
  CHECK(out.find("the part that ran FAILED") != std::string::npos);
}

TEST_CASE("ctest's summary names the opted-out MongoDB test as not run", "[fixture][mongo][optout]") {
  // A ctest of its own over this build's tests, in a temporary folder (so that
  // its Testing/ logs do not mix with the ctest running this test).
  TempDir dir;
  {
    std::ofstream testfile(dir / "CTestTestfile.cmake");
    testfile << "subdirs(\"" << IOTBRIDGE_BINARY_DIR << "/tests\")\n";
  }
  std::string ctest = find_program("ctest");
  REQUIRE_FALSE(ctest.empty());
  std::string out;
  int rc = run_command({"/usr/bin/env", "-u", "CI", "-u", "IOTBRIDGE_TEST_MONGO_URI", "IOTBRIDGE_SKIP_MONGO=1",
                        "IOTBRIDGE_FERRETDB=/nonexistent/ferretdb", ctest, "--test-dir", dir.path().string(), "-R",
                        std::string("^integration:") + kMongoFixtureTest + "$"},
                       &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("0 tests failed out of 1") != std::string::npos);
  CHECK(out.find("The following tests did not run:") != std::string::npos);
  CHECK(out.find(std::string("integration:") + kMongoFixtureTest + " (Skipped)") != std::string::npos);
}

TEST_CASE("in CI, IOTBRIDGE_SKIP_MONGO is refused and a missing FerretDB fails the test, naming it",
          "[fixture][mongo][optout]") {
  std::string out;
  CHECK(run_self(kMongoFixtureTest,
                 {"CI=true", "-IOTBRIDGE_TEST_MONGO_URI", "IOTBRIDGE_SKIP_MONGO=1",
                  "IOTBRIDGE_FERRETDB=/nonexistent/ferretdb"},
                 &out) != 0);
  INFO(out);
  CHECK(out.find("IOTBRIDGE_SKIP_MONGO=1 is ignored in CI") != std::string::npos);
  CHECK(out.find("MongoDB-compatible server (FerretDB) not found at '/nonexistent/ferretdb'") != std::string::npos);
  CHECK(out.find(kSkipped) == std::string::npos);
}

TEST_CASE("a broker that cannot start fails the test at once, saying which server and why", "[fixture][mosquitto]") {
  MosquittoServer::Options o;
  o.extra_config = "no_such_option 1";
  try {
    MosquittoServer broker(o);
    FAIL("a broker with a bad configuration started");
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    INFO(what);
    CHECK(what.find("Mosquitto broker") != std::string::npos);
    CHECK(what.find("did not start") != std::string::npos);
    CHECK(what.find("no_such_option") != std::string::npos);  // mosquitto's own complaint, from its log
  }
}

TEST_CASE("IOTBRIDGE_TEST_MONGO_URI points the MongoDB tests at that server", "[fixture][mongo][uri]") {
  IOTBRIDGE_REQUIRE_MONGO();
  MongoServer server;  // stands in for a real mongod
  std::string out;
  // No FerretDB can be started (it is "missing"), so a pass means the URI was used.
  CHECK(run_self(kMongoFixtureTest,
                 {"-CI", "-IOTBRIDGE_SKIP_MONGO", "IOTBRIDGE_TEST_MONGO_URI=" + server.uri(),
                  "IOTBRIDGE_FERRETDB=/nonexistent/ferretdb"},
                 &out) == 0);
  INFO(out);
  CHECK(out.find("All tests passed") != std::string::npos);

  // A URI where nothing answers fails the test, naming the address.
  server.stop();
  out.clear();
  CHECK(run_self(kMongoFixtureTest,
                 {"-CI", "-IOTBRIDGE_SKIP_MONGO", "IOTBRIDGE_TEST_MONGO_URI=" + server.uri(),
                  "IOTBRIDGE_FERRETDB=/nonexistent/ferretdb"},
                 &out) != 0);
  CHECK(out.find("127.0.0.1:" + std::to_string(server.port())) != std::string::npos);
}
