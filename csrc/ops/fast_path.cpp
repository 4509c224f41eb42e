#include "fast_path.h"

#include <torch/library.h>

#include <atomic>
#include <cstdlib>

namespace recperf {
namespace {

// Open use_backend blocks that force a backend other than cpp (recperf/dispatch.py counts
// them in and out). Process-wide rather than per thread or context: while any is open,
// every call takes the dispatcher, which knows the block's exact scope.
std::atomic<int64_t> forcing_blocks{0};

}  // namespace

bool cpp_backend_in_force(c10::string_view backend) {
  if (backend != "auto" && backend != "cpp") return false;
  if (forcing_blocks.load(std::memory_order_relaxed) != 0) return false;
  const char* env = std::getenv("RECPERF_BACKEND");
  if (env == nullptr) return true;
  const c10::string_view forced(env);
  return forced.empty() || forced == "auto" || forced == "cpp";
}

TORCH_LIBRARY_FRAGMENT(recperf_kernels, m) {
  // Adds delta to the count of open use_backend blocks forcing a backend other than cpp;
  // returns the new count.
  m.def("forcing_blocks(int delta) -> int", [](int64_t delta) {
    return forcing_blocks.fetch_add(delta) + delta;
  });
}

}  // namespace recperf
