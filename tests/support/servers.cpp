#include "servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#ifndef IOTBRIDGE_FERRETDB_DEFAULT
#define IOTBRIDGE_FERRETDB_DEFAULT ""
#endif

namespace iotbridge::test {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void must_run(const std::vector<std::string>& argv) {
  if (int rc = run_command(argv); rc != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("command failed (exit " + std::to_string(rc) + "): " + cmd);
  }
}

// CA, broker and client certificates for a TLS listener, made with openssl.
void make_certificates(const fs::path& dir, const std::string& subject_alt_name) {
  auto p = [&](const char* name) { return (dir / name).string(); };
  auto make_ca = [&](const char* key, const char* crt, const char* cn) {
    must_run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
              std::string("/CN=") + cn, "-keyout", p(key), "-out", p(crt)});
  };
  make_ca("ca.key", "ca.crt", "iotbridge test CA");
  make_ca("other-ca.key", "other-ca.crt", "unrelated CA");
  write_file(dir / "san.ext", "subjectAltName=" + subject_alt_name + "\n");
  auto make_leaf = [&](const char* name, const char* cn, bool server) {
    std::string key = std::string(name) + ".key", csr = std::string(name) + ".csr", crt = std::string(name) + ".crt";
    must_run({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", std::string("/CN=") + cn, "-keyout",
              p(key.c_str()), "-out", p(csr.c_str())});
    std::vector<std::string> sign = {"openssl", "x509",      "-req",   "-in",         p(csr.c_str()),
                                     "-CA",     p("ca.crt"), "-CAkey", p("ca.key"),   "-CAcreateserial",
                                     "-days",   "2",         "-out",   p(crt.c_str())};
    if (server) {
      sign.push_back("-extfile");
      sign.push_back(p("san.ext"));
    }
    must_run(sign);
  };
  make_leaf("server", subject_alt_name.find("DNS:localhost") != std::string::npos ? "localhost" : "elsewhere.invalid",
            true);
  make_leaf("client", "iotbridge-client", false);
}

// Waits until the server accepts connections on `port`; false as soon as it
// exits (a bad configuration, a port taken) instead of at the timeout.
bool wait_until_serving(Process& process, int port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (process.alive()) {
    if (wait_for_port(port, std::chrono::milliseconds(200))) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
  return false;
}

// free_port() hands out a port that was free a moment ago; another process
// (an outgoing connection's ephemeral port, another test run's server) can
// take it before our server binds it. The server then exits saying so, and
// the fixture tries again on a new port rather than failing the test.
constexpr int kStartAttempts = 3;

bool port_was_taken(const std::string& failure) {
  return failure.find("ddress already in use") != std::string::npos;  // Mosquitto: "Address", FerretDB: "address"
}

// Calls start() until it succeeds, calling new_ports() between attempts that
// failed because the port was taken; any other failure is thrown at once.
template <typename Start, typename NewPorts>
void start_on_free_port(Start&& start, NewPorts&& new_ports) {
  for (int attempt = 1;; ++attempt) {
    try {
      start();
      return;
    } catch (const std::runtime_error& e) {
      if (attempt == kStartAttempts || !port_was_taken(e.what())) throw;
    }
    new_ports();
  }
}

}  // namespace

// ---- TempDir ---------------------------------------------------------------

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

// ---- ports and programs ----------------------------------------------------

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(2);
  while (true) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // Polling a port has no event to wait on; back off gently.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

std::string find_program(const std::string& name) {
  std::string path = env("PATH") + ":/usr/sbin:/sbin:/usr/local/sbin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

namespace {
std::vector<char*> c_argv(std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (auto& a : argv) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}
}  // namespace

int run_command(const std::vector<std::string>& argv_in, std::string* output) {
  std::vector<std::string> argv = argv_in;
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    auto args = c_argv(argv);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (output) *output += out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- Process ---------------------------------------------------------------

namespace {
// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the
// process: a server (re)started from a short-lived thread would be SIGKILLed
// the moment that thread returns. So every Process is forked on one thread
// that lives as long as the test process (leaked on purpose: no join at exit).
// `child` runs in the forked child and must end in exec or _exit.
class Spawner {
 public:
  static pid_t fork(const std::function<void()>& child) {
    static Spawner* spawner = new Spawner;
    return spawner->run_fork(child);
  }

 private:
  Spawner() {
    std::thread([this] { serve(); }).detach();
  }

  pid_t run_fork(const std::function<void()>& child) {
    std::packaged_task<pid_t()> task([&child] {
      pid_t pid = ::fork();
      if (pid == 0) {
        child();
        ::_exit(127);
      }
      return pid;
    });
    auto result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return result.get();
  }

  [[noreturn]] void serve() {
    for (;;) {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return !tasks_.empty(); });
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<pid_t()>> tasks_;
};
}  // namespace

Process::Process(std::vector<std::string> argv, const fs::path& log) {
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open log " + log.string());
  pid_t parent = ::getpid();
  auto args = c_argv(argv);  // built before the fork: the child only calls async-signal-safe functions
  pid_ = Spawner::fork([&] {
    // Die with the test process, so a crashed test leaves no server behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::execv(args[0], args.data());
  });
  ::close(log_fd);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Process::~Process() { terminate(); }

bool Process::alive() {
  if (status_) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

int Process::terminate(std::chrono::milliseconds grace) {
  if (status_ || pid_ <= 0) return status_.value_or(0);
  ::kill(pid_, SIGCONT);  // a paused process cannot act on SIGTERM
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (alive()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill_hard();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return status_.value_or(0);
}

void Process::kill_hard() {
  if (status_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = status;
}

// ---- MosquittoServer -------------------------------------------------------

MosquittoServer::MosquittoServer() : MosquittoServer(Options{}) {}

MosquittoServer::MosquittoServer(Options options)
    : options_(std::move(options)), dir_("iotbridge-mosquitto"), port_(free_port()) {
  if (options_.tls) {
    tls_port_ = free_port();
    make_certificates(dir_.path(), options_.tls_subject_alt_name);
  }
  start_on_free_port(
      [this] {
        write_config();
        start();
      },
      [this] {
        port_ = free_port();
        if (options_.tls) tls_port_ = free_port();
      });
}

MosquittoServer::~MosquittoServer() { stop(); }

void MosquittoServer::write_config() {
  std::ostringstream c;
  // As root, mosquitto would switch to user "mosquitto", who cannot read our temp dir.
  if (::geteuid() == 0) c << "user root\n";
  c << "per_listener_settings false\n";
  c << "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n";
  c << "max_queued_messages 100000\n";
  if (options_.persistence) {
    c << "persistence true\npersistence_location " << dir_.path().string() << "/\nautosave_interval 1\n";
  } else {
    c << "persistence false\n";
  }
  if (options_.users.empty()) {
    c << "allow_anonymous true\n";
  } else {
    fs::path pw = dir_ / "passwords";
    write_file(pw, "");
    for (const auto& [user, password] : options_.users)
      must_run({"mosquitto_passwd", "-b", pw.string(), user, password});
    c << "allow_anonymous false\npassword_file " << pw.string() << "\n";
  }
  if (!options_.acl.empty()) {
    write_file(dir_ / "acl", options_.acl);
    c << "acl_file " << (dir_ / "acl").string() << "\n";
  }
  c << "listener " << port_ << " 127.0.0.1\n";
  if (options_.tls) {
    c << "listener " << tls_port_ << " 127.0.0.1\n";
    c << "cafile " << ca_file().string() << "\n";
    c << "certfile " << (dir_ / "server.crt").string() << "\n";
    c << "keyfile " << (dir_ / "server.key").string() << "\n";
    if (options_.require_client_certificate) c << "require_certificate true\n";
  }
  c << options_.extra_config << "\n";
  write_file(dir_ / "mosquitto.conf", c.str());
}

pid_t MosquittoServer::pid() const { return process_ ? process_->pid() : -1; }

std::string MosquittoServer::log() const { return read_file(dir_ / "mosquitto.log"); }

void MosquittoServer::start() {
  std::string binary = find_program("mosquitto");
  if (binary.empty())
    throw std::runtime_error(
        "Mosquitto broker not found (no 'mosquitto' in PATH or /usr/sbin); "
        "run scripts/install-deps");
  process_ = std::make_unique<Process>(std::vector<std::string>{binary, "-c", (dir_ / "mosquitto.conf").string()},
                                       dir_ / "mosquitto.log");
  bool up = wait_until_serving(*process_, port_, std::chrono::seconds(10)) &&
            (!options_.tls || wait_until_serving(*process_, tls_port_, std::chrono::seconds(10)));
  if (!up || !process_->alive())
    throw std::runtime_error("Mosquitto broker (" + binary + ") did not start on 127.0.0.1:" + std::to_string(port_) +
                             "; its log: " + log());
}

void MosquittoServer::stop() {
  if (process_) process_->terminate();
  process_.reset();
}

void MosquittoServer::kill() {
  if (process_) process_->kill_hard();
  process_.reset();
}

// ---- MongoServer -----------------------------------------------------------

std::string MongoServer::ferretdb_binary() {
  std::string path = env("IOTBRIDGE_FERRETDB");
  if (path.empty()) path = IOTBRIDGE_FERRETDB_DEFAULT;
  return path;
}

MongoServer::MongoServer() : dir_("iotbridge-ferretdb"), port_(free_port()) {
  start_on_free_port([this] { start(); }, [this] { port_ = free_port(); });
}

MongoServer::~MongoServer() { stop(); }

std::string MongoServer::uri() const { return "mongodb://127.0.0.1:" + std::to_string(port_) + "/"; }

pid_t MongoServer::pid() const { return process_ ? process_->pid() : -1; }

void MongoServer::start() {
  std::string binary = ferretdb_binary();
  if (binary.empty() || ::access(binary.c_str(), X_OK) != 0)
    throw std::runtime_error("MongoDB-compatible server (FerretDB) not found at '" + binary +
                             "': build it with scripts/build-ferretdb and reconfigure, set "
                             "IOTBRIDGE_FERRETDB=/path/to/ferretdb, or point IOTBRIDGE_TEST_MONGO_URI at a mongod");
  fs::create_directories(dir_ / "data");
  process_ = std::make_unique<Process>(
      std::vector<std::string>{binary, "--handler=sqlite", "--sqlite-url=file:" + (dir_ / "data").string() + "/",
                               "--listen-addr=127.0.0.1:" + std::to_string(port_),
                               "--state-dir=" + dir_.path().string(), "--debug-addr=-", "--telemetry=disable",
                               "--log-level=error"},
      dir_ / "ferretdb.log");
  if (!wait_until_serving(*process_, port_, std::chrono::seconds(20)) || !process_->alive())
    throw std::runtime_error("MongoDB-compatible server (FerretDB, " + binary + ") did not start on 127.0.0.1:" +
                             std::to_string(port_) + "; its log: " + read_file(dir_ / "ferretdb.log"));
}

void MongoServer::stop() {
  if (process_) process_->terminate();
  process_.reset();
}

void MongoServer::pause() {
  if (process_) process_->signal(SIGSTOP);
}

void MongoServer::resume() {
  if (process_) process_->signal(SIGCONT);
}

bool mongo_opted_out() {
  if (env("IOTBRIDGE_SKIP_MONGO") != "1") return false;
  if (env("CI") == "true" || env("CI") == "1") {
    std::cerr << "IOTBRIDGE_SKIP_MONGO=1 is ignored in CI: the MongoDB tests must run\n";
    return false;
  }
  return true;
}

std::string test_mongo_uri() {
  if (std::string uri = env("IOTBRIDGE_TEST_MONGO_URI"); !uri.empty()) return uri;
  static std::unique_ptr<MongoServer> shared;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (!shared) shared = std::make_unique<MongoServer>();
  return shared->uri();
}

namespace {
std::string& skip_reason() {
  static std::string reason;  // test cases run one at a time on the main thread
  return reason;
}
}  // namespace

void skip_rest_of_test(const std::string& reason) { skip_reason() = reason; }

std::string take_skip_reason() { return std::exchange(skip_reason(), std::string()); }

std::string unique_db_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  static const unsigned seed = std::random_device{}();
  return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(seed % 100000) + "_" +
         std::to_string(counter++);
}

}  // namespace iotbridge::test
