// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status (Debian's Abseil 20220623 has no status_macros.h).
#ifndef ACCELSEL_UTIL_STATUS_MACROS_H_
#define ACCELSEL_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ACCELSEL_RETURN_IF_ERROR(expr)           \
  do {                                           \
    const absl::Status accelsel_st_ = (expr);    \
    if (!accelsel_st_.ok()) return accelsel_st_; \
  } while (0)

#define ACCELSEL_CONCAT_INNER_(a, b) a##b
#define ACCELSEL_CONCAT_(a, b) ACCELSEL_CONCAT_INNER_(a, b)
#define ACCELSEL_ASSIGN_OR_RETURN(lhs, expr) \
  ACCELSEL_ASSIGN_OR_RETURN_IMPL_(ACCELSEL_CONCAT_(accelsel_sor_, __LINE__), lhs, expr)
#define ACCELSEL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

#endif  // ACCELSEL_UTIL_STATUS_MACROS_H_
