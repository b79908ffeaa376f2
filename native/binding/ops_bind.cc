// The runOp table: for each op name, check the inputs, allocate the outputs on the backend and
// bind the Backend call (the list with inputs, attrs and outputs is at the top of ops.cc). The
// entries live in one file per category: ops_bind_memory.cc, ops_bind_dense.cc,
// ops_bind_norm.cc, ops_bind_elementwise.cc, ops_bind_image.cc, ops_bind_tokens.cc.
#include "ops_bind.h"

namespace vargpt::binding {

namespace {

const BinderTable& binders() {
  static const BinderTable table = [] {
    BinderTable t;
    add_memory_binders(t);
    add_dense_binders(t);
    add_norm_binders(t);
    add_elementwise_binders(t);
    add_image_binders(t);
    add_tokens_binders(t);
    return t;
  }();
  return table;
}

}  // namespace

BoundOp bind_op(Backend& be, const OpCall& call) {
  const auto& table = binders();
  auto it = table.find(call.op);
  if (it == table.end()) {
    std::string names;
    for (const auto& [name, binder] : table) names += (names.empty() ? "" : ", ") + name;
    fail("runOp: unknown op \"", call.op, "\" (known: ", names, ")");
  }
  BoundOp bound = it->second(be, call);
  call.attrs.check_all_used();
  return bound;
}

}  // namespace vargpt::binding
