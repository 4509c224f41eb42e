// Typed handles of registered ops, looked up once per call site (keep them static).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <string>

namespace recperf {

// The op "namespace::name" (default overload), e.g. op_handle<Sig>("recperf::fm_pairwise").
template <typename Signature>
c10::TypedOperatorHandle<Signature> op_handle(const std::string& qualified_name) {
  return c10::Dispatcher::singleton()
      .findSchemaOrThrow(qualified_name.c_str(), "")
      .typed<Signature>();
}

}  // namespace recperf
