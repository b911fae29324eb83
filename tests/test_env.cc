// Linked into every test binary: sets ACCELSEL_SOURCE_DIR, ACCELSEL_BIN_DIR and ACCELSEL_TEST_TMPDIR before
// main() unless the environment already has them, and ACCELSEL_PROGRESS=0 so that what a test captures of
// stderr does not depend on whether it runs at a terminal (tests that check progress lines force them on).
// gtest_discover_tests (CMake 3.25) splits a multi-variable ENVIRONMENT property on ';' and keeps only the first
// variable, so ctest alone does not deliver all three.
#include <cstdlib>

namespace {

struct TestEnvironmentDefaults {
  TestEnvironmentDefaults() {
    setenv("ACCELSEL_SOURCE_DIR", ACCELSEL_TEST_SOURCE_DIR, /*overwrite=*/0);
    setenv("ACCELSEL_BIN_DIR", ACCELSEL_TEST_BIN_DIR, /*overwrite=*/0);
    setenv("ACCELSEL_TEST_TMPDIR", ACCELSEL_TEST_TMPDIR_DEFAULT, /*overwrite=*/0);
    setenv("ACCELSEL_PROGRESS", "0", /*overwrite=*/0);
  }
};

const TestEnvironmentDefaults kDefaults;

}  // namespace
