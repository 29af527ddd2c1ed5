#include "server.hpp"

#include <fmt/core.h>
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <thread>

#include "assets.hpp"

namespace iotbridge::view {

struct ViewServer::Impl {
  ApiSource source;
  httplib::Server http;
  std::thread thread;
};

namespace {

// Runs one API answer; a bad parameter is a 400, a store failure a 500, each
// with {"error": "..."}.
void answer(httplib::Response& res, const char* type, const std::function<std::string()>& body) {
  try {
    res.set_content(body(), type);
  } catch (const Error& e) {
    res.status = e.category() == ErrorCategory::config ? 400 : 500;
    res.set_content(fmt::format("{{\"error\": {}}}\n", store::Value(std::string(e.what())).to_json()),
                    "application/json");
  } catch (const std::exception& e) {
    res.status = 500;
    res.set_content(fmt::format("{{\"error\": {}}}\n", store::Value(std::string(e.what())).to_json()),
                    "application/json");
  }
}

}  // namespace

ViewServer::ViewServer(ApiSource source) : impl_(std::make_unique<Impl>()) {
  impl_->source = std::move(source);
  auto& http = impl_->http;
  const ApiSource* src = &impl_->source;
  constexpr const char* kJson = "application/json";

  http.new_task_queue = [] { return new httplib::ThreadPool(4); };  // a page polls a few endpoints at once
  // httplib's default adds SO_REUSEPORT, with which a second server binds a
  // port already in use and shares it silently: keep only SO_REUSEADDR (a
  // restart may bind at once), so that a port in use is an error.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_pre_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    ++requests_;
    res.set_header("Cache-Control", "no-store");
    return httplib::Server::HandlerResponse::Unhandled;
  });
  for (const auto& asset : page_assets()) {
    std::string path(asset.path);
    auto serve = [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(asset.body), std::string(asset.content_type));
    };
    http.Get(path, serve);
    if (path == "/index.html") http.Get("/", serve);
  }
  http.Get("/api/topics", [src](const httplib::Request&, httplib::Response& res) {
    answer(res, kJson, [&] { return api_topics(*src); });
  });
  http.Get("/api/series", [src](const httplib::Request& req, httplib::Response& res) {
    answer(res, kJson, [&] { return api_series(*src, req.get_param_value("topic"), req.get_param_value("since")); });
  });
  http.Get("/api/readings", [src](const httplib::Request& req, httplib::Response& res) {
    answer(res, kJson, [&] { return api_readings(*src, req.get_param_value("limit")); });
  });
  http.Get("/api/stats", [src](const httplib::Request&, httplib::Response& res) {
    answer(res, kJson, [&] { return api_stats(*src); });
  });
  http.Get("/api/chart.svg", [src](const httplib::Request& req, httplib::Response& res) {
    answer(res, "image/svg+xml", [&] {
      return api_chart_svg(*src, req.get_param_value("topic"), req.get_param_value("since"),
                           req.get_param_value("width"));
    });
  });
  auto read_only = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("{\"error\": \"iotbridge-db serve is read-only: only GET\"}\n", "application/json");
  };
  http.Post(".*", read_only);
  http.Put(".*", read_only);
  http.Patch(".*", read_only);
  http.Delete(".*", read_only);
}

ViewServer::~ViewServer() { stop(); }

int ViewServer::bind(const ListenAddress& address) {
  int port = address.port;
  bool bound = false;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(address.host);
    bound = port > 0;
  } else {
    bound = impl_->http.bind_to_port(address.host, port);
  }
  if (!bound)
    throw Error(ErrorCategory::io,
                fmt::format("cannot listen on {}:{}: the port is in use or the address is not this machine's (choose "
                            "another with --listen HOST:PORT, or port 0 for any free port)",
                            address.host, address.port));
  return port;
}

void ViewServer::start() {
  if (impl_->thread.joinable()) return;
  impl_->thread = std::thread([this] { impl_->http.listen_after_bind(); });
  // httplib's stop() does nothing before its loop runs: wait for the loop, so
  // that a stop() right after start() cannot leave it running.
  while (!impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void ViewServer::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->http.stop();
  impl_->thread.join();
}

}  // namespace iotbridge::view
