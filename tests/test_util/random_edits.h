// Random edits of a text file for the parser tests: 1 to 8 insertions, deletions or byte changes, drawn from
// characters that matter to CSV and ARFF (quotes, separators, comment markers, line ends).
#ifndef ACCELSEL_TESTS_TEST_UTIL_RANDOM_EDITS_H_
#define ACCELSEL_TESTS_TEST_UTIL_RANDOM_EDITS_H_

#include <random>
#include <string>

namespace accelsel::testing_util {

// `s` with 1 to 8 random edits drawn from `rng`.
inline std::string Mutate(std::string s, std::mt19937_64* rng) {
  const std::string alphabet = "ab,'\"\\?%@{}\n\r 0123456789.eE-+#\t";
  const int edits = 1 + static_cast<int>((*rng)() % 8);
  for (int e = 0; e < edits; ++e) {
    const size_t pos = (*rng)() % (s.size() + 1);
    switch ((*rng)() % 3) {
      case 0: s.insert(pos, 1, alphabet[(*rng)() % alphabet.size()]); break;
      case 1:
        if (pos < s.size()) s.erase(pos, 1);
        break;
      default:
        if (pos < s.size()) s[pos] = static_cast<char>((*rng)() % 256);
        break;
    }
  }
  return s;
}

}  // namespace accelsel::testing_util

#endif  // ACCELSEL_TESTS_TEST_UTIL_RANDOM_EDITS_H_
