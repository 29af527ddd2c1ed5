// Shared flag handling for iotbridge-pub and iotbridge-sub (see common.hpp).
#include "common.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "iotbridge/error.hpp"
#include "iotbridge/topic.hpp"

namespace iotbridge::cli {

void add_connection_flags(CLI::App& app, ConnectionFlags& f) {
  app.set_help_flag("--help", "Print this help and exit");
  app.add_option("-h,--host", f.hosts,
                 "Broker host name, or host:port (default localhost); several: tried in order (failover)")
      ->allow_extra_args(false);
  app.add_option("-p,--port", f.port, "Broker port (default 1883, or 8883 with TLS)")->check(CLI::Range(1, 65535));
  app.add_option("-L,--url", f.urls,
                 "mqtt(s)://[user[:password]@]host[:port]/topic, instead of -h -p -u -P -t; several: failover")
      ->allow_extra_args(false);
  app.add_option("-A", f.bind_address, "Local address to bind the connection to");
  app.add_option("-i,--id", f.id, "Client id (default: generated)");
  app.add_option("-I,--id-prefix", f.id_prefix, "Client id prefix; the process id is appended");
  app.add_flag("-c,--disable-clean-session", f.disable_clean_session,
               "Persistent session: the broker keeps subscriptions and QoS 1/2 messages (needs -i)");
  app.add_option("-k,--keepalive", f.keepalive, "Seconds between PINGs (default 60, 5..65535)");
  app.add_option("-u,--username", f.username, "User name");
  app.add_option_function<std::string>(
      "-P,--pw", [&f](const std::string& v) { f.password = v; },
      "Password (visible in ps: prefer --password-file or IOTBRIDGE_PASSWORD)");
  app.add_option("--password-file", f.password_file, "Read the password from the first line of this file");
  app.add_option("-V,--protocol-version", f.protocol, "MQTT version: 5, 311 (default) or 31 (also mqttv5 ...)");
  app.add_option_function<std::string>(
      "-x", [&f](const std::string& v) { f.session_expiry = v; },
      "MQTT 5 session expiry interval in seconds (-1: never)");
  app.add_option("-q,--qos", f.qos, "Quality of service 0, 1 or 2 (default 0)");
  app.add_option("--will-topic", f.will_topic, "Topic of the message the broker sends if we vanish");
  app.add_option_function<std::string>(
      "--will-payload", [&f](const std::string& v) { f.will_payload = v; }, "Payload of the will");
  app.add_option_function<int>(
      "--will-qos", [&f](const int& v) { f.will_qos = v; }, "QoS of the will (default 0)");
  app.add_flag("--will-retain", f.will_retain, "Retain the will");
  app.add_option("--cafile", f.cafile, "PEM file of trusted CAs (turns TLS on)");
  app.add_option("--capath", f.capath, "Folder of hashed PEM CAs (turns TLS on)");
  app.add_option("--cert", f.cert, "Client certificate, PEM (with --key)");
  app.add_option("--key", f.key, "Client private key, PEM (with --cert)");
  app.add_option("--tls-version", f.tls_version, "tlsv1.3, tlsv1.2 or tlsv1.1");
  app.add_flag("--insecure", f.insecure, "Do not check the broker's host name against its certificate (testing only)");
  app.add_flag("--nodelay", f.nodelay, "Disable Nagle's algorithm: lower latency, more packets");
  app.add_flag("-d,--debug", f.debug, "Print debug messages to stderr");
  app.add_flag("--quiet", f.quiet, "Print no runtime errors (usage errors still show)");
}

namespace {

mqtt::Protocol parse_protocol(const std::string& text) {
  if (text == "5" || text == "mqttv5") return mqtt::Protocol::v5;
  if (text == "311" || text == "mqttv311") return mqtt::Protocol::v311;
  if (text == "31" || text == "mqttv31") return mqtt::Protocol::v31;
  throw UsageError("invalid protocol version '" + text + "': use 5, 311 or 31.");
}

void check_qos(int qos, const char* what) {
  if (qos < 0 || qos > 2)
    throw UsageError(std::string("invalid ") + what + " " + std::to_string(qos) + ": use 0, 1 or 2.");
}

// "mqtt://user:pw@host:1883/some/topic" -> ("mqtt://user:pw@host:1883", "some/topic").
std::pair<std::string, std::string> split_url(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos)
    throw UsageError("invalid URL '" + url + "': expected mqtt(s)://[user[:password]@]host[:port]/topic.");
  auto authority_start = scheme_end + 3;
  auto at = url.find('@', authority_start);
  auto slash = url.find('/', at == std::string::npos ? authority_start : at);
  if (slash == std::string::npos) return {url, ""};
  return {url.substr(0, slash), url.substr(slash + 1)};
}

// -h: "host", "host:port", "[v6]:port" or a bare IPv6 address; `port` where it names none.
mqtt::BrokerAddress parse_host(const std::string& text, int port) {
  auto bad = [&](const std::string& why) {
    return UsageError("invalid -h '" + text + "': " + why + "; write a host name, host:port or [IPv6]:port.");
  };
  mqtt::BrokerAddress a{text, port};
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) throw bad("unclosed '['");
    a.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') throw bad("expected ':port' after ']'");
      port_text = text.substr(close + 2);
      if (port_text.empty()) throw bad("empty port");
    }
  } else if (auto colon = text.find(':');
             colon != std::string::npos && text.find(':', colon + 1) == std::string::npos) {
    a.host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (port_text.empty()) throw bad("empty port");
  }
  if (a.host.empty()) throw bad("no host");
  if (!port_text.empty()) {
    int value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || value < 1 || value > 65535)
      throw bad("the port must be a number from 1 to 65535, not '" + port_text + "'");
    a.port = value;
  }
  return a;
}

// The brokers of several -L: their authorities make a failover list; the
// topics must agree (or be left out after the first).
void resolve_urls(const ConnectionFlags& f, Connection& c) {
  std::vector<std::string> authorities;
  for (const auto& url : f.urls) {
    auto [authority, topic] = split_url(url);
    authorities.push_back(authority);
    if (topic.empty()) continue;
    if (!c.url_topic.empty() && topic != c.url_topic)
      throw UsageError("the -L URLs name different topics ('" + c.url_topic + "' and '" + topic +
                       "'); give the topic in one of them, or with -t.");
    c.url_topic = topic;
  }
  try {
    c.options = authorities.size() == 1 ? mqtt::options_from_url(authorities.front(), c.options)
                                        : mqtt::options_from_urls(authorities, c.options);
  } catch (const Error& e) {
    if (f.urls.size() == 1) throw UsageError(std::string("invalid URL '") + f.urls.front() + "': " + e.what());
    throw UsageError(e.what());
  }
  if (f.port != 0) {
    if (f.urls.size() > 1) throw UsageError("-p cannot go with several -L: put each broker's port in its URL.");
    c.options.port = f.port;
  }
}

}  // namespace

std::string read_secret_file(const std::string& path, const std::string& what, std::vector<std::string>& warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read the " + what + " '" + path + "': " + std::strerror(errno) + ".");
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    warnings.push_back("the " + what + " '" + path + "' is readable by other users; chmod 600 it.");
  return line;
}

Connection resolve_connection(const ConnectionFlags& f) {
  Connection c;
  mqtt::Options& o = c.options;

  if (!f.urls.empty() && !f.hosts.empty()) throw UsageError("give the brokers with -h or with -L, not both.");
  if (!f.urls.empty()) {
    resolve_urls(f, c);
  } else {
    // Several -h: the first, then the others in order (mqtt::Options::failover).
    auto first = parse_host(f.hosts.empty() ? std::string("localhost") : f.hosts.front(), f.port);
    o.host = first.host;
    o.port = first.port;
    for (std::size_t i = 1; i < f.hosts.size(); ++i) o.failover.push_back(parse_host(f.hosts[i], f.port));
  }
  o.bind_address = f.bind_address;
  o.tcp_nodelay = f.nodelay;

  if (!f.id.empty() && !f.id_prefix.empty()) throw UsageError("-i and -I cannot be used together.");
  if (!f.id.empty()) o.client_id = f.id;
  if (!f.id_prefix.empty()) o.client_id = f.id_prefix + std::to_string(::getpid());
  o.clean_session = !f.disable_clean_session;
  if (!o.clean_session && o.client_id.empty())
    throw UsageError("-c (persistent session) needs a client id: give one with -i.");

  if (f.keepalive < 5 || f.keepalive > 65535)
    throw UsageError("invalid keepalive " + std::to_string(f.keepalive) + ": use 5 to 65535 seconds.");
  o.keepalive = std::chrono::seconds(f.keepalive);
  o.protocol = parse_protocol(f.protocol);
  check_qos(f.qos, "QoS");

  if (f.session_expiry) {
    if (o.protocol != mqtt::Protocol::v5) throw UsageError("-x (session expiry) needs MQTT 5: add -V 5.");
    const std::string& x = *f.session_expiry;
    // Options keeps a session only with clean_session off, so any expiry but
    // 0 means "-c with this expiry" (mosquitto would still start clean).
    if (x == "-1" || x == "\xe2\x88\x9e" || x == "4294967295") {
      o.session_expiry_interval = 0;  // never expires, in Options' terms
      o.clean_session = false;
    } else {
      char* end = nullptr;
      errno = 0;
      unsigned long long v = std::strtoull(x.c_str(), &end, 10);
      if (x.empty() || x[0] == '-' || *end != '\0' || errno != 0 || v > 4294967294ULL)
        throw UsageError("invalid session expiry '" + x + "': use 0 to 4294967294 seconds, or -1 for never.");
      if (v == 0 && !o.clean_session)
        throw UsageError("-x 0 contradicts -c: a persistent session that expires at once.");
      o.session_expiry_interval = static_cast<std::uint32_t>(v);
      if (v > 0) o.clean_session = false;
    }
    if (!o.clean_session && o.client_id.empty())
      throw UsageError("-x with an expiry other than 0 keeps the session, which needs a client id: give one with -i.");
  }

  // Credentials: -P, else --password-file, else $IOTBRIDGE_PASSWORD (with a user name), else the URL's.
  if (!f.username.empty()) o.username = f.username;
  if (f.password && !f.password_file.empty())
    throw UsageError("give the password with -P or --password-file, not both.");
  if (f.password) {
    o.password = *f.password;
  } else if (!f.password_file.empty()) {
    o.password = read_secret_file(f.password_file, "password file", c.warnings);
  } else if (const char* env = std::getenv("IOTBRIDGE_PASSWORD"); env && !o.username.empty() && !o.password) {
    o.password = std::string(env);
  }
  if (o.password && o.username.empty() && o.protocol != mqtt::Protocol::v5)
    throw UsageError("a password needs a user name (-u) with MQTT 3.1/3.1.1.");

  if (!f.will_topic.empty()) {
    if (auto problem = topic_problem(f.will_topic))
      throw UsageError("invalid will topic '" + f.will_topic + "': " + *problem + ".");
    mqtt::Will w;
    w.topic = f.will_topic;
    w.payload = f.will_payload.value_or("");
    w.qos = f.will_qos.value_or(0);
    check_qos(w.qos, "will QoS");
    w.retain = f.will_retain;
    o.will = w;
  } else if (f.will_payload || f.will_qos || f.will_retain) {
    throw UsageError("--will-payload, --will-qos and --will-retain need --will-topic.");
  }

  bool tls_flag = !f.cafile.empty() || !f.capath.empty() || !f.cert.empty() || !f.key.empty() ||
                  !f.tls_version.empty() || f.insecure;
  if (tls_flag) o.tls.enabled = true;
  if (f.cert.empty() != f.key.empty()) throw UsageError("--cert and --key go together: give both or neither.");
  if (!f.cafile.empty()) o.tls.ca_file = f.cafile;
  if (!f.capath.empty()) o.tls.ca_dir = f.capath;
  o.tls.cert_file = f.cert;
  o.tls.key_file = f.key;
  if (!f.tls_version.empty()) {
    if (f.tls_version != "tlsv1.3" && f.tls_version != "tlsv1.2" && f.tls_version != "tlsv1.1")
      throw UsageError("invalid --tls-version '" + f.tls_version + "': use tlsv1.3, tlsv1.2 or tlsv1.1.");
    o.tls.version = f.tls_version;
  }
  if (f.insecure) {
    o.tls.insecure = true;
    c.warnings.push_back(
        "--insecure: the broker's certificate is not checked against its host name, so anyone on the path can "
        "impersonate it; use this for testing only.");
  }
  // An interactive tool should say so quickly when the broker is not there.
  return c;
}

void report_error(bool quiet, std::string_view what) {
  if (!quiet) std::cerr << "Error: " << what << '\n';
}

void report_usage_error(std::string_view tool, std::string_view what) {
  std::cerr << "Error: " << what << "\nUse '" << tool << " --help' to see usage.\n";
}

namespace {

void blank(char* text) {
  for (; *text; ++text) *text = '*';
}

// Overwrites passwords given on the command line (-P, --pw, -L with
// user:password@) in the process's own argument list, so that `ps` and
// /proc/PID/cmdline stop showing them once flags are parsed. They were
// visible until then (and stay in shell history): hence --password-file.
void hide_passwords(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if ((arg == "-P" || arg == "--pw") && i + 1 < argc) {
      blank(argv[++i]);
    } else if (arg.rfind("--pw=", 0) == 0) {
      blank(argv[i] + 5);
    } else if (arg.size() > 2 && arg.rfind("-P", 0) == 0) {
      blank(argv[i] + 2);
    } else if ((arg == "-L" || arg == "--url") && i + 1 < argc) {
      char* url = argv[++i];
      char* scheme = std::strstr(url, "://");
      if (!scheme) continue;
      char* authority = scheme + 3;
      char* at = std::strchr(authority, '@');
      if (!at) continue;
      char* colon = static_cast<char*>(std::memchr(authority, ':', static_cast<std::size_t>(at - authority)));
      if (colon)
        for (char* c = colon + 1; c < at; ++c) *c = '*';
    }
  }
}

}  // namespace

std::optional<int> parse_or_exit(CLI::App& app, int argc, char** argv) {
  // mosquitto's tools take the next word as an option's value even when it
  // starts with '-' (-m -5, -m "-hello", -t -x): glue such values on, since
  // CLI11 would read them as options.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const CLI::Option* opt =
        arg.size() >= 2 && arg[0] == '-' && arg.find('=') == std::string::npos ? app.get_option_no_throw(arg) : nullptr;
    if (opt && opt->get_expected_min() > 0 && opt->get_type_size_min() > 0 && i + 1 < argc && argv[i + 1][0] == '-' &&
        argv[i + 1][1] != '\0') {
      std::string value = argv[++i];
      if (!opt->get_lnames().empty()) {
        args.push_back("--" + opt->get_lnames().front() + "=" + value);
      } else {
        args.push_back(arg + value);
      }
      continue;
    }
    args.push_back(std::move(arg));
  }
  std::reverse(args.begin(), args.end());
  hide_passwords(argc, argv);
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << '\n';
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    report_usage_error(app.get_name(), e.what());
    return kExitError;
  }
  return std::nullopt;
}

std::optional<int> connect_client(mqtt::Client& client, const ConnectionFlags& flags) {
  auto refused = std::make_shared<std::atomic<int>>(0);
  client.on_connect([refused](const mqtt::ConnectResult& r) {
    if (r.reason_code != 0) refused->store(r.reason_code);
  });
  // libmosquitto's lines only with -d: errors that matter reach the user as
  // the one sentence of the Error thrown. A log handler makes libmosquitto
  // format a line per packet, so none is installed otherwise (the client then
  // reports its own rare warnings, such as a lost connection, on stderr),
  // except a silent one for --quiet.
  const bool quiet = flags.quiet;
  if (flags.debug) {
    client.on_log([](mqtt::LogLevel, std::string_view line) { std::cerr << line << '\n'; });
  } else if (quiet) {
    client.on_log([](mqtt::LogLevel, std::string_view) {});
  }
  try {
    client.connect();
    return std::nullopt;
  } catch (const Error& e) {
    report_error(quiet, e.what());
    int code = refused->load();
    return code != 0 ? code : kExitError;
  }
}

int guarded_main(int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << '\n';
    return kExitError;
  }
}

}  // namespace iotbridge::cli
