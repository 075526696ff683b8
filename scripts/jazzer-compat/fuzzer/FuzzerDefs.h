// Declarations @jazzer.js/fuzzer needs from compiler-rt's private FuzzerDefs.h, which Debian's
// libclang-rt-14-dev does not ship. Only the driver entry point and its callback type are used; both
// are part of libFuzzer's stable surface (LLVMFuzzerRunDriver wraps the same function).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fuzzer {
typedef int (*UserCallback)(const uint8_t *Data, size_t Size);
int FuzzerDriver(int *argc, char ***argv, UserCallback Callback);
} // namespace fuzzer
