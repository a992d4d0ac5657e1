// The example pipelines in ci/ stay valid YAML and name only commands that exist: script files
// that are there, pinmark commands and options that `pinmark COMMAND --help` describes, and
// the README's own commands.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "driver/command_line.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::read_file;
using test::TempDir;
using test::write_file;

const std::vector<std::string> kPipelines = {"ci/github-actions.yml", "ci/gitlab-ci.yml"};

std::string source(const std::string& path) { return read_file(std::string(PINMARK_SOURCE_DIR) + "/" + path); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

size_t indent_of(const std::string& line) { return line.find_first_not_of(' '); }

// A structural check of the YAML subset the pipelines use: no tabs, indentation in steps of
// two, and every line outside a block scalar (`key: |`) a comment, `key:`, `key: value` or
// `- item`. Returns "" or the first problem with its line.
std::string yaml_problem(const std::string& text) {
  size_t block_indent = std::string::npos;  // the indentation of a block scalar's key
  int number = 0;
  for (const std::string& line : lines_of(text)) {
    ++number;
    const std::string at = "line " + std::to_string(number) + ": ";
    if (line.find('\t') != std::string::npos) return at + "a tab";
    const size_t indent = indent_of(line);
    if (indent == std::string::npos) continue;
    if (block_indent != std::string::npos) {
      if (indent > block_indent) continue;
      block_indent = std::string::npos;
    }
    std::string rest = line.substr(indent);
    if (rest[0] == '#') continue;
    if (indent % 2) return at + "indented by an odd number of spaces";
    if (rest.rfind("- ", 0) == 0) rest = rest.substr(2);
    const size_t colon = rest.find(':');
    const bool key = colon != std::string::npos && colon > 0 &&
                     (colon + 1 == rest.size() || rest[colon + 1] == ' ') &&
                     rest.find_first_of(" \"'", 0) > colon;
    if (key) {
      const std::string value = rest.substr(colon + 1);
      if (value == " |" || value == " >") block_indent = indent + (line.substr(indent, 2) == "- " ? 2 : 0);
      continue;
    }
    if (line.substr(indent, 2) != "- ") return at + "neither 'key: value' nor '- item': " + rest;
  }
  return "";
}

// What is wrong with the commands of a pipeline: a `bash ci/...` script that does not exist,
// a pinmark command or option that `pinmark COMMAND --help` does not describe. Also counts the
// commands checked, so that a pipeline naming none is seen.
struct CommandCheck {
  std::vector<std::string> problems;
  int pinmark_commands = 0, scripts = 0;
};

CommandCheck check_commands(const std::string& text, const std::string& root) {
  CommandCheck check;
  for (const std::string& line : lines_of(text)) {
    const size_t indent = indent_of(line);
    if (indent == std::string::npos || line[indent] == '#') continue;
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    for (size_t i = 0; i < words.size(); ++i) {
      if (words[i] == "bash" && i + 1 < words.size() && words[i + 1].rfind("ci/", 0) == 0) {
        ++check.scripts;
        if (!fs::is_regular_file(fs::path(root) / words[i + 1]))
          check.problems.push_back("no script " + words[i + 1]);
      }
      const std::string& w = words[i];
      if (w != "pinmark" && (w.size() < 8 || w.compare(w.size() - 8, 8, "/pinmark") != 0)) continue;
      if (i + 1 >= words.size()) continue;
      ++check.pinmark_commands;
      const std::string command = words[i + 1];
      std::ostringstream out, err;
      if (run_command_line({command, "--help"}, out, err) != 0) {
        check.problems.push_back("no pinmark command '" + command + "'");
        continue;
      }
      for (size_t j = i + 2; j < words.size(); ++j) {
        const std::string& a = words[j];
        if (a == "&&" || a == "||" || a == ";" || a == "|") break;
        if (a.rfind("-", 0) != 0) continue;
        const std::string option = a.substr(0, a.find('='));
        if (!contains(out.str(), option + " ") && !contains(out.str(), option + "]") &&
            !contains(out.str(), option + "\n"))
          check.problems.push_back("pinmark " + command + " has no option " + option);
      }
    }
  }
  return check;
}

TEST(CiPipelines, AreValidYaml) {
  for (const std::string& path : kPipelines) {
    const std::string text = source(path);
    EXPECT_EQ(yaml_problem(text), "") << path;
  }
  // Where Debian's python3-yaml is installed, a real YAML parser agrees.
  if (std::system("python3 -c 'import yaml' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3 yaml not installed: only the structural check ran";
  for (const std::string& path : kPipelines) {
    const std::string command = "python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' '" +
                                std::string(PINMARK_SOURCE_DIR) + "/" + path + "'";
    EXPECT_EQ(std::system(command.c_str()), 0) << path;
  }
}

TEST(CiPipelines, StructuralCheckFindsBrokenYaml) {
  EXPECT_EQ(yaml_problem("a:\n  b: c\n  run: |\n    echo x: y\n     \"q\"\n  d:\n    - e\n"), "");
  EXPECT_EQ(yaml_problem("a:\n\tb: c\n"), "line 2: a tab");
  EXPECT_EQ(yaml_problem("a:\n   b: c\n"), "line 2: indented by an odd number of spaces");
  EXPECT_EQ(yaml_problem("a:\n  just words\n"), "line 2: neither 'key: value' nor '- item': just words");
}

TEST(CiPipelines, NameOnlyCommandsThatExist) {
  for (const std::string& path : kPipelines) {
    const CommandCheck check = check_commands(source(path), PINMARK_SOURCE_DIR);
    EXPECT_TRUE(check.problems.empty()) << path << ": " << check.problems.front();
    EXPECT_GE(check.pinmark_commands, 1) << path;
    EXPECT_GE(check.scripts, 2) << path;
  }
}

TEST(CiPipelines, CommandCheckFindsWhatDoesNotExist) {
  TempDir dir;
  fs::create_directories(dir.file("ci"));
  write_file(dir.file("ci/build.sh"), "");
  const CommandCheck check = check_commands(
      "run: bash ci/build.sh && bash ci/missing.sh\n"
      "run: ./build/driver/pinmark run cases --junit r.xml --bogus\n"
      "run: ./build/driver/pinmark frobnicate\n"
      "# ./build/driver/pinmark ignored in a comment\n",
      dir.path());
  EXPECT_EQ(check.scripts, 2);
  EXPECT_EQ(check.pinmark_commands, 2);
  ASSERT_EQ(check.problems.size(), 3u);
  EXPECT_EQ(check.problems[0], "no script ci/missing.sh");
  EXPECT_EQ(check.problems[1], "pinmark run has no option --bogus");
  EXPECT_EQ(check.problems[2], "no pinmark command 'frobnicate'");
}

// The pipelines run the README's commands, verbatim, and do what their jobs promise.
TEST(CiPipelines, RunTheReadmesCommands) {
  const std::string readme = source("README.md");
  const std::vector<std::string> commands = {
      "bash ci/install-deps.sh && bash ci/build.sh && ./build/driver/pinmark run cases",
      "ctest --test-dir build --output-on-failure -j2",
      "--junit reports/pinmark.xml --summary reports/summary.md",
  };
  for (const std::string& c : commands) {
    EXPECT_TRUE(contains(readme, c)) << "the README no longer says: " << c;
    for (const std::string& path : kPipelines) EXPECT_TRUE(contains(source(path), c)) << path << ": " << c;
  }
  const std::string github = source("ci/github-actions.yml");
  EXPECT_TRUE(contains(github, "cat reports/summary.md >> \"$GITHUB_STEP_SUMMARY\""));
  EXPECT_TRUE(contains(github, "path: cases/**/*.md.pending"));
  EXPECT_TRUE(contains(github, "runs-on: [self-hosted, gpu]"));
  EXPECT_TRUE(contains(github, "./build/driver/pinmark run cases --regenerate --force"));
  EXPECT_TRUE(contains(github, "name: refreshed-goldens"));
  const std::string gitlab = source("ci/gitlab-ci.yml");
  EXPECT_TRUE(contains(gitlab, "junit: reports/pinmark.xml"));
  EXPECT_TRUE(contains(gitlab, "- cases/**/*.md.pending"));
}

}  // namespace
}  // namespace pinmark
