// Tracing (host copies of intermediate tensors, the public `trace: true`) and per-stage wall-clock
// profiling (`profile: true`), shared by every pipeline.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../../backend/backend.h"

namespace vargpt {

// Collects host copies of intermediate tensors when tracing is on.
class TraceSink {
 public:
  TraceSink(Backend& backend, std::vector<std::pair<std::string, Tensor>>* out) : backend_(backend), out_(out) {}
  bool enabled() const { return out_ != nullptr; }
  void add(const std::string& name, const Tensor& t) {
    if (out_) out_->emplace_back(name, backend_.to_host(t));
  }
  // Stacks equally shaped tensors along a new leading axis.
  void stack(const std::string& name, const std::vector<Tensor>& parts);

 private:
  Backend& backend_;
  std::vector<std::pair<std::string, Tensor>>* out_;
};

// Wall-clock seconds per stage; synchronises the backend at stage edges so queued device work
// is charged to the stage that issued it. Off by default (no synchronisation cost).
class Profiler {
 public:
  Profiler(Backend& backend, bool enabled) : backend_(backend), enabled_(enabled) {}
  class Stage {
   public:
    Stage(Profiler& p, const char* name) : p_(p), name_(name) {
      if (p_.enabled_) {
        p_.backend_.synchronize();
        start_ = std::chrono::steady_clock::now();
      }
    }
    ~Stage() {
      if (!p_.enabled_) return;
      try {
        p_.backend_.synchronize();
      } catch (...) {  // a failing device already reports through the op that failed
      }
      p_.seconds_[name_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    Stage(const Stage&) = delete;
    Stage& operator=(const Stage&) = delete;

   private:
    Profiler& p_;
    std::string name_;
    std::chrono::steady_clock::time_point start_;
  };
  void count(const std::string& name, double value) {
    if (enabled_) seconds_[name] += value;
  }
  std::vector<std::pair<std::string, double>> results() const {
    return std::vector<std::pair<std::string, double>>(seconds_.begin(), seconds_.end());
  }

 private:
  Backend& backend_;
  bool enabled_;
  std::map<std::string, double> seconds_;
};

}  // namespace vargpt
