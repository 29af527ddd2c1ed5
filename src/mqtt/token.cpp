// DeliveryToken and SubscribeToken: thin handles on detail::TokenState.
#include "iotbridge/error.hpp"
#include "iotbridge/mqtt/client.hpp"
#include "mqtt/token_state.hpp"

namespace iotbridge::mqtt {
namespace {

std::shared_ptr<detail::TokenState> completed_state() {
  auto state = std::make_shared<detail::TokenState>();
  state->done = true;
  return state;
}

// Waits (forever when timeout is nullopt); true when done. Throws on failure.
bool wait_state(detail::TokenState& state, std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(state.mutex);
  if (timeout) {
    if (!state.cv.wait_for(lock, *timeout, [&] { return state.done; })) return false;
  } else {
    state.cv.wait(lock, [&] { return state.done; });
  }
  if (state.error) throw Error(ErrorCategory::mqtt, *state.error, state.reason_code);
  return true;
}

}  // namespace

DeliveryToken::DeliveryToken() : state_(completed_state()) {}
DeliveryToken::DeliveryToken(std::shared_ptr<detail::TokenState> state) : state_(std::move(state)) {}
int DeliveryToken::mid() const noexcept { return state_->mid; }
bool DeliveryToken::done() const {
  std::lock_guard lock(state_->mutex);
  return state_->done;
}
void DeliveryToken::wait() const { wait_state(*state_, std::nullopt); }
bool DeliveryToken::wait_for(std::chrono::milliseconds timeout) const { return wait_state(*state_, timeout); }
int DeliveryToken::reason_code() const {
  std::lock_guard lock(state_->mutex);
  return state_->reason_code;
}

SubscribeToken::SubscribeToken() : state_(completed_state()) {}
SubscribeToken::SubscribeToken(std::shared_ptr<detail::TokenState> state) : state_(std::move(state)) {}
int SubscribeToken::mid() const noexcept { return state_->mid; }
bool SubscribeToken::done() const {
  std::lock_guard lock(state_->mutex);
  return state_->done;
}
std::vector<int> SubscribeToken::wait() const {
  wait_state(*state_, std::nullopt);
  return granted_qos();
}
bool SubscribeToken::wait_for(std::chrono::milliseconds timeout) const { return wait_state(*state_, timeout); }
std::vector<int> SubscribeToken::granted_qos() const {
  std::lock_guard lock(state_->mutex);
  return state_->granted;
}

}  // namespace iotbridge::mqtt
