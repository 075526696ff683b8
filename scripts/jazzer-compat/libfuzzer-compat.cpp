// Bridges @jazzer.js/fuzzer 2.1.0, written against Code Intelligence's patched libFuzzer, to the stock
// libFuzzer in Debian's libclang-rt-14-dev. Jazzer.js 4 ships a prebuilt addon only (needs glibc 2.38 /
// GLIBCXX_3.4.32; Debian 12 has 2.36), and 2.x's own build downloads its patched LLVM from GitHub, so
// this is how the project gets real libFuzzer-driven, coverage-guided JS fuzzing without network access.
//
// What the patched libFuzzer adds and what stands in for it here:
//  - `__jazzer_set_death_callback`: stock libFuzzer registers its crash-dump callback through the
//    sanitizer hook `__sanitizer_set_death_callback` instead; forward it.
//  - A callback return of -2 stops the patched fuzzing loop; stock libFuzzer ignores it and keeps going,
//    which would hide a finding behind a clean exit. Jazzer.js always dumps the crashing input (through
//    the death callback) before returning -2, so the forwarded callback exits with libFuzzer's crash
//    status right after the dump.
//  - `*_with_pc` tracing entry points let Jazzer.js pass a synthetic PC per JS comparison; stock
//    libFuzzer takes the PC from the return address. The operands still reach the comparison tables
//    that drive mutations; only value-profile PCs collapse to the call site.
#include <cstdint>
#include <cstdlib>

extern "C" {
void __jazzer_set_death_callback(void (*callback)());
void __sanitizer_cov_trace_const_cmp8(uint64_t arg1, uint64_t arg2);
void __sanitizer_cov_trace_pc_indir(uintptr_t callee);
}

namespace {
constexpr int kFindingExitCode = 77; // Jazzer.js and libFuzzer's "crash" status

void (*gLibFuzzerDeathCallback)() = nullptr;

void DumpInputAndExit() {
  if (gLibFuzzerDeathCallback != nullptr)
    gLibFuzzerDeathCallback();
  std::_Exit(kFindingExitCode);
}
} // namespace

extern "C" __attribute__((visibility("default"))) void
__sanitizer_set_death_callback(void (*callback)()) {
  gLibFuzzerDeathCallback = callback;
  __jazzer_set_death_callback(&DumpInputAndExit);
}

extern "C" __attribute__((visibility("default"))) void
__sanitizer_cov_trace_const_cmp8_with_pc(uintptr_t /*pc*/, uint64_t arg1, uint64_t arg2) {
  __sanitizer_cov_trace_const_cmp8(arg1, arg2);
}

extern "C" __attribute__((visibility("default"))) void
__sanitizer_cov_trace_pc_indir_with_pc(void * /*pc*/, uintptr_t callee) {
  __sanitizer_cov_trace_pc_indir(callee);
}
