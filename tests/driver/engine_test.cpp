// External engines as targets (driver/engine_config.h, driver/engine_run.h): the configuration
// file's errors, which cases an engine's targets join, and every way an engine's run can end,
// fed through tests/driver/fake_engine.cpp, which answers from the oracle in the request folder.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>

#include "driver/case_spec.h"
#include "driver/command_line.h"
#include "driver/engine_config.h"
#include "driver/file_run.h"
#include "driver/golden_rows.h"
#include "driver/verdict.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::contains;
using test::read_file;
using test::write_file;

constexpr const char* kCase =
    "# T\n\n## Small llama\n\n### Config\n\n```json\n"
    "{\"vocab_size\": 32, \"hidden_size\": 16, \"intermediate_size\": 40, "
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
    "\"pinmark\": {\"seed\": 3}}\n```\n\n"
    "### Inputs\n\n```json\n{\"prompts\": [[1, 5, 9, 3], [2, 7]], \"decode\": 3, "
    "\"dumps\": [\"layers.0.q\"]}\n```\n\n"
    "### Targets\n\n```json\n{\"targets\": [\"cpu fp32\", \"fake fp32\"]}\n```\n";

std::string config_text(const json& options, double timeout_s = 60,
                        const json& command = json::array({PINMARK_FAKE_ENGINE})) {
  return json{{"engines",
               {{"fake",
                 {{"command", command},
                  {"cases", {"models/*.md"}},
                  {"timeout_s", timeout_s},
                  {"targets", {{"fake fp32", options}}}}}}}}
      .dump(2);
}

class Engines : public ::testing::Test {
 protected:
  // A repository: the configuration at its root, the case in models/.
  std::string setup(const json& options, double timeout_s = 60,
                    const json& command = json::array({PINMARK_FAKE_ENGINE}),
                    const std::string& case_text = kCase) {
    write_file(dir_.file(kEngineConfigName), config_text(options, timeout_s, command));
    fs::create_directories(dir_.file("models"));
    const std::string path = dir_.file("models/case.md");
    write_file(path, case_text);
    return path;
  }
  FileRun run(const std::string& path) {
    return run_file(path, [](const Case&) { return true; });
  }
  const TargetRow* row_of(const FileRun& r, const std::string& prefix) {
    for (const TargetRow& row : r.outcomes.at(0).result.numerics)
      if (row.label.rfind(prefix, 0) == 0) return &row;
    return nullptr;
  }
  std::string unpinnable(const FileRun& r) {
    std::string all;
    for (const std::string& u : r.outcomes.at(0).result.unpinnable) all += u + "\n";
    return all;
  }
  test::TempDir dir_;
};

TEST_F(Engines, AnExactEngineIsMeasuredAndKeyedByItsDeviceClass) {
  const FileRun r = run(setup({{"mode", "exact"}, {"device_class", "sm90"}}));
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_EQ(unpinnable(r), "");
  const TargetRow* row = row_of(r, "fake ");
  ASSERT_NE(row, nullptr);
  EXPECT_EQ(row->label, "fake sm90 fp32");
  EXPECT_TRUE(row->ran);
  EXPECT_TRUE(row->ok);
  // fp32 copies of fp64 values: one rounding each.
  EXPECT_GT(row->rel_l2, 0.0);
  EXPECT_LT(row->rel_l2, 1e-7);
  EXPECT_EQ(row->top1_agree, row->top1_total);
  EXPECT_EQ(row->top1_total, 4 + 2 + 2 * 2);  // prompt positions and decode steps but the last
  const std::string text = r.outcomes[0].actual;
  EXPECT_TRUE(contains(text, "| fake sm90 fp32 |")) << text;
  EXPECT_TRUE(contains(text, "- `fake sm90 fp32`: fingerprint `inputs ")) << text;
  EXPECT_TRUE(contains(text, "computed as: fp32 copies of the oracle; produced on:\n  - fake-engine 1.0 "
                             "on the test machine"))
      << text;
}

TEST_F(Engines, TheRunSaysHowManyRowsEnginesMeasuredHere) {
  const std::string path = setup({{"mode", "exact"}});
  std::ostringstream out, err;
  run_command_line({"run", path, "--regenerate", "-q"}, out, err);
  EXPECT_TRUE(contains(out.str(), "1 rows measured here by the engines of pinmark-engines.json"))
      << out.str() << err.str();
}

// A failed engine fails its case; the summary does not also call its rows unmeasured.
TEST_F(Engines, AFailedEngineIsNoUnmeasuredRow) {
  const std::string path = setup({{"mode", "crash"}});
  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"run", path, "-q", "--no-pending"}, out, err), 1);
  EXPECT_TRUE(contains(out.str(), "the engine exited with status 3")) << out.str() << err.str();
  EXPECT_FALSE(contains(out.str(), "have not been measured on any machine")) << out.str();
}

TEST_F(Engines, TheFirstTapTheEngineGotWrongIsTheFirstDivergence) {
  const FileRun r = run(setup({{"mode", "later-layers"}}));
  const TargetRow* row = row_of(r, "fake fp32");
  ASSERT_NE(row, nullptr) << unpinnable(r);
  EXPECT_FALSE(row->ok);
  // The oracle's first tap of layer 1 is its first; the fake engine reports every tap.
  EXPECT_EQ(row->first_divergence, "layers.1.attn_norm");
  EXPECT_FALSE(r.passed(r.outcomes[0]));
}

TEST_F(Engines, NanFailsAndPrintsAsNan) {
  const FileRun r = run(setup({{"mode", "nan"}}));
  const TargetRow* row = row_of(r, "fake fp32");
  ASSERT_NE(row, nullptr) << unpinnable(r);
  EXPECT_FALSE(row->ok);
  EXPECT_TRUE(std::isnan(row->rel_l2));
}

TEST_F(Engines, OutputsThatDifferBetweenTheTwoRunsAreNotReproducible) {
  const FileRun r = run(setup({{"mode", "nondeterministic"}}));
  const TargetRow* row = row_of(r, "fake fp32");
  ASSERT_NE(row, nullptr) << unpinnable(r);
  EXPECT_EQ(row->nondeterministic, std::vector<std::string>{"runs"});
  EXPECT_FALSE(row->ok);
  const std::vector<std::string> failures = case_failures(r.outcomes[0].result);
  EXPECT_NE(std::find(failures.begin(), failures.end(),
                      "target fake fp32 is not reproducible (NO: runs; Numerics verdict FAIL)"),
            failures.end());
}

TEST_F(Engines, UnsupportedIsARowThatSaysWhyAndPasses) {
  const std::string path = setup({{"mode", "unsupported"}});
  const FileRun r = run(path);
  const TargetRow* row = row_of(r, "fake fp32");
  ASSERT_NE(row, nullptr) << unpinnable(r);
  EXPECT_TRUE(row->ok);
  const std::string text = r.outcomes[0].actual;
  EXPECT_TRUE(contains(text, "| unsupported | — |")) << text;
  EXPECT_TRUE(contains(text, "; unsupported: the fake engine does not do this; produced on:")) << text;
  EXPECT_TRUE(r.passed(r.outcomes[0]) || !r.matches(r.outcomes[0]));
  // Written back, it reads back: carried where the engine cannot run, still passing.
  write_file(path, r.rendered());
  const FileRun again = run(path);
  EXPECT_TRUE(again.passed(again.outcomes[0])) << again.outcomes[0].actual;
}

// Each failure: the case fails, its golden is untouched, and the message names the engine,
// what went wrong and the end of its stderr.
struct Failure {
  const char* mode;
  const char* message;
};

class EngineFailures : public Engines, public ::testing::WithParamInterface<Failure> {};

TEST_P(EngineFailures, FailTheCaseNamingTheEngineAndLeaveTheGoldenAlone) {
  const FileRun r = run(setup({{"mode", GetParam().mode}}, 2));
  ASSERT_EQ(r.outcomes.size(), 1u);
  const std::string why = unpinnable(r);
  EXPECT_TRUE(contains(why, "engine 'fake' (")) << why;
  EXPECT_TRUE(contains(why, kEngineConfigName)) << why;
  EXPECT_TRUE(contains(why, GetParam().message)) << why;
  EXPECT_EQ(r.outcomes[0].actual, r.parsed.cases[0].text);
  EXPECT_FALSE(r.passed(r.outcomes[0]));
}

INSTANTIATE_TEST_SUITE_P(
    EveryWay, EngineFailures,
    ::testing::Values(
        Failure{"error", "the fake engine was told to fail; its stderr ended with:\nfake-engine: "
                         "about to fail"},
        Failure{"crash", "the engine exited with status 3 before it replied; its stderr ended "
                         "with:\nfake-engine: crashing now"},
        Failure{"hang", "the engine gave no reply within 2 s (timeout_s) and was killed"},
        Failure{"no-output", "the engine replied done but wrote no output for 'fake fp32' ("},
        Failure{"no-repeat", "has no tensor 'repeat.sequence.0.logits' [4, 32]"},
        Failure{"stray-tensor", "tensor 'sequence.0.taps.layers.0.atn_out' is none of the outputs "
                                "pinmark reads"}),
    [](const auto& info) {
      std::string name = info.param.mode;
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

TEST_F(Engines, ACommandThatCannotStartIsNamed) {
  const FileRun r = run(setup({{"mode", "exact"}}, 60, json::array({"/no/such/engine"})));
  const std::string why = unpinnable(r);
  EXPECT_TRUE(contains(why, "cannot start '/no/such/engine' in ")) << why;
  EXPECT_TRUE(contains(why, "No such file or directory")) << why;
}

// An engine that cannot run here leaves its rows to the golden, judged as GPU rows are.
TEST_F(Engines, AnUnavailableEngineCarriesItsRowsFromTheGolden) {
  const std::string path = setup({{"mode", "exact"}});
  FileRun measured = run(path);
  ASSERT_EQ(unpinnable(measured), "");
  write_file(path, measured.rendered());
  for (const json& command :
       {json::array({PINMARK_FAKE_ENGINE, "--exit-77"}), json::array({PINMARK_FAKE_ENGINE}),
        json::array({PINMARK_FAKE_ENGINE, "--unavailable-at-start"})}) {
    SCOPED_TRACE(command.dump());
    // A configuration of its own (another folder), so that the engine starts afresh.
    test::TempDir other;
    write_file(other.file(kEngineConfigName),
               config_text({{"mode", command.size() == 1 ? "unavailable" : "exact"}}, 60, command));
    fs::create_directories(other.file("models"));
    const std::string moved = other.file("models/case.md");
    write_file(moved, read_file(path));
    const FileRun r = run(moved);
    EXPECT_EQ(unpinnable(r), "");
    const TargetRow* row = row_of(r, "fake fp32");
    ASSERT_NE(row, nullptr);
    EXPECT_TRUE(row->carried);
    // The options differ from those it was measured with: the code part of its fingerprint.
    EXPECT_EQ(row->stale, "the code changed since it was measured");
    EXPECT_TRUE(row->ok);
    // Carried, it renders as it was recorded.
    EXPECT_TRUE(contains(r.outcomes[0].actual, "; computed as: fp32 copies of the oracle;"))
        << r.outcomes[0].actual;
  }
}

// pinmark cannot see inside an engine: the files its configuration names as the engine's code
// are part of its rows' fingerprint, so a row measured by other code is stale.
TEST_F(Engines, ARowIsStaleOnceTheEngineCodeItNamesChanged) {
  const std::string path = setup({{"mode", "exact"}});
  auto with_code = [](const std::string& folder, const std::string& kernel) {
    json config = json::parse(config_text({{"mode", "exact"}}));
    config["engines"]["fake"]["code"] = {"engine_src"};
    write_file(folder + "/" + kEngineConfigName, config.dump(2));
    fs::create_directories(folder + "/engine_src/kernels");
    write_file(folder + "/engine_src/main.py", "print('engine')\n");
    write_file(folder + "/engine_src/kernels/attention.cu", kernel);
  };
  with_code(dir_.path(), "// v1\n");
  FileRun measured = run(path);
  ASSERT_EQ(unpinnable(measured), "");
  const std::string golden = measured.rendered();
  test::ScopedEnv off("PINMARK_NO_ENGINES", "1");  // the rows are carried from the golden
  for (const auto& [kernel, stale] :
       std::vector<std::pair<std::string, std::string>>{
           {"// v1\n", ""}, {"// v2\n", "the code changed since it was measured"}}) {
    SCOPED_TRACE(kernel);
    test::TempDir other;  // read afresh: a configuration is read once per process
    with_code(other.path(), kernel);
    fs::create_directories(other.file("models"));
    write_file(other.file("models/case.md"), golden);
    const FileRun r = run(other.file("models/case.md"));
    EXPECT_EQ(unpinnable(r), "");
    const TargetRow* row = row_of(r, "fake fp32");
    ASSERT_NE(row, nullptr);
    EXPECT_TRUE(row->carried);
    EXPECT_EQ(row->stale, stale);
  }
}

TEST_F(Engines, NoEnginesCarriesEveryEngineRow) {
  const std::string path = setup({{"mode", "exact"}});
  FileRun measured = run(path);
  write_file(path, measured.rendered());
  test::ScopedEnv off("PINMARK_NO_ENGINES", "1");
  test::TempDir other;  // a configuration whose engine would crash if it started
  write_file(other.file(kEngineConfigName), config_text({{"mode", "crash"}}));
  fs::create_directories(other.file("models"));
  write_file(other.file("models/case.md"), read_file(path));
  const FileRun r = run(other.file("models/case.md"));
  EXPECT_EQ(unpinnable(r), "");
  const TargetRow* row = row_of(r, "fake fp32");
  ASSERT_NE(row, nullptr);
  EXPECT_TRUE(row->carried);
  EXPECT_FALSE(row->ran);
}

// A one-layer model case, with a Targets block holding `targets` when given.
std::string small_case(const std::string& targets = "") {
  std::string text =
      "# T\n\n## Small\n\n### Config\n\n```json\n{\"vocab_size\": 32, \"hidden_size\": 16, "
      "\"intermediate_size\": 40, \"num_hidden_layers\": 1, \"num_attention_heads\": 4}\n```\n\n"
      "### Inputs\n\n```json\n{\"prompts\": [[1, 2]]}\n```\n";
  if (!targets.empty()) text += "\n### Targets\n\n```json\n" + targets + "\n```\n";
  return text;
}

// A case file copied where no pinmark-engines.json is found (out of its repository) knows no
// engine: the engine rows its golden holds are carried as recorded, said so, never dropped.
TEST_F(Engines, ACopyWithNoEnginesFileCarriesTheEngineRows) {
  const std::string path = setup({{"mode", "exact"}}, 60, json::array({PINMARK_FAKE_ENGINE}),
                                 small_case());
  FileRun measured = run(path);
  ASSERT_EQ(unpinnable(measured), "");
  ASSERT_NE(row_of(measured, "fake fp32"), nullptr);
  write_file(path, measured.rendered());

  test::TempDir elsewhere;
  const std::string copy = elsewhere.file("case.md");
  write_file(copy, read_file(path));
  const FileRun r = run(copy);
  const TargetRow* row = row_of(r, "fake fp32");
  ASSERT_NE(row, nullptr) << r.outcomes.at(0).actual;
  EXPECT_TRUE(row->carried);
  EXPECT_TRUE(row->engine_unknown);
  EXPECT_EQ(row->stale, "");
  EXPECT_TRUE(row->ok);
  EXPECT_EQ(r.outcomes.at(0).actual, r.outcomes.at(0).expected);

  std::ostringstream out, err;
  EXPECT_EQ(run_command_line({"run", copy, "-q", "--no-pending"}, out, err), 0)
      << out.str() << err.str();
  EXPECT_TRUE(contains(out.str(), "1 of them are rows of engines that no pinmark-engines.json"))
      << out.str();
  // Regenerated there, the file keeps them.
  EXPECT_EQ(run_command_line({"run", copy, "--regenerate", "-q"}, out, err), 0);
  EXPECT_TRUE(contains(read_file(copy), "| fake fp32 |")) << read_file(copy);

  // The inputs part of their fingerprint is still checked: other prompts make them stale.
  std::string edited = read_file(copy);
  const size_t at = edited.find("[[1, 2]]");
  ASSERT_NE(at, std::string::npos);
  edited.replace(at, 8, "[[1, 3]]");
  write_file(copy, edited);
  const FileRun changed = run(copy);
  const TargetRow* stale = row_of(changed, "fake fp32");
  ASSERT_NE(stale, nullptr);
  EXPECT_EQ(stale->stale, "the case's inputs changed since it was measured");
}

TEST_F(Engines, JoinTheDefaultTargetsOfTheirCasesOnly) {
  const std::string model_case = small_case();
  const std::string path = setup({{"mode", "exact"}}, 60, json::array({PINMARK_FAKE_ENGINE}), model_case);
  auto names = [](const std::string& file) {
    const CaseFile parsed = parse_case_file(read_file(file));
    std::vector<std::string> out;
    for (const Target& t : read_case_spec(parsed.cases.at(0), file).targets.targets)
      out.push_back(t.name());
    return out;
  };
  const std::vector<std::string> in_models = names(path);
  EXPECT_EQ(in_models.back(), "fake fp32");
  EXPECT_EQ(in_models.size(), default_targets().size() + 1);
  // Outside the engine's `cases`: the defaults alone.
  fs::create_directories(dir_.file("attention"));
  write_file(dir_.file("attention/case.md"), model_case);
  EXPECT_EQ(names(dir_.file("attention/case.md")).size(), default_targets().size());
}

TEST_F(Engines, ACaseThatKeepsTheDefaultTargetsMayBoundAnEngineTarget) {
  const std::string text = small_case("{\"tolerance\": {\"fake fp32\": 0.5, \"nowhere fp32\": 0.5}}");
  const std::string path = setup({{"mode", "exact"}}, 60, json::array({PINMARK_FAKE_ENGINE}), text);
  const CaseFile parsed = parse_case_file(read_file(path));
  const CaseSpec spec = read_case_spec(parsed.cases.at(0), path);
  ASSERT_EQ(spec.problems.size(), 1u);
  EXPECT_EQ(spec.problems[0].message,
            "a tolerance for 'nowhere fp32', which is not among the case's targets");
  EXPECT_EQ(spec.targets.tolerance.at("fake fp32"), 0.5);
}

// The same case copied where no pinmark-engines.json is found: the message says why no engine
// target is known.
TEST_F(Engines, ABoundForAnEngineTargetWithNoEnginesFileSaysSo) {
  const std::string text = small_case("{\"tolerance\": {\"fake fp32\": 0.5}}");
  const CaseSpec spec = read_case_spec(parse_case_file(text).cases.at(0), "");
  ASSERT_EQ(spec.problems.size(), 1u);
  EXPECT_EQ(spec.problems[0].message,
            "a tolerance for 'fake fp32', which is not among the case's targets (no "
            "pinmark-engines.json was found beside the case file or above it, so no engine's "
            "targets are known)");
}

// An engines file that cannot be read is the one problem: no follow-on problem per bound for
// targets it might have added.
TEST_F(Engines, AnUnreadableEnginesFileIsTheOnlyProblem) {
  const std::string text = small_case("{\"tolerance\": {\"fake fp32\": 0.5, \"other fp16\": 0.5}}");
  const std::string path = setup({{"mode", "exact"}}, 60, json::array({PINMARK_FAKE_ENGINE}), text);
  write_file(dir_.file(kEngineConfigName), "{\"engines\": [");
  const CaseSpec spec = read_case_spec(parse_case_file(read_file(path)).cases.at(0), path);
  ASSERT_EQ(spec.problems.size(), 1u) << spec.problems.back().message;
  EXPECT_TRUE(spec.problems[0].message.find(kEngineConfigName) != std::string::npos)
      << spec.problems[0].message;
}

TEST_F(Engines, AKernelCaseCannotNameAnEngineTarget) {
  const std::string path = setup(
      {{"mode", "exact"}}, 60, json::array({PINMARK_FAKE_ENGINE}),
      "# K\n\n## M\n\n### Kernel\n\n```json\n{\"op\": \"matmul\", \"n\": 2, \"k\": 3, \"m\": 2, "
      "\"seed\": 1}\n```\n\n### Targets\n\n```json\n{\"targets\": [\"fake fp32\"]}\n```\n");
  const CaseFile parsed = parse_case_file(read_file(path));
  const CaseSpec spec = read_case_spec(parsed.cases.at(0), path);
  ASSERT_EQ(spec.problems.size(), 1u);
  EXPECT_EQ(spec.problems[0].message,
            "'fake fp32' is an engine's target, and engines run model cases only");
}

// The configuration file: every mistake names the file and the key.
struct BadConfig {
  const char* text;
  const char* message;
};

class EngineConfigErrors : public ::testing::TestWithParam<BadConfig> {};

TEST_P(EngineConfigErrors, NameTheFileAndTheKey) {
  try {
    parse_engine_config(GetParam().text, "repo/pinmark-engines.json");
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).substr(0, std::string(GetParam().message).size()),
              GetParam().message);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Each, EngineConfigErrors,
    ::testing::Values(
        BadConfig{"{\"engines\": {\"e\": {\"comand\": [\"x\"], \"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e: unknown key 'comand' (did you mean "
                  "'command'?); an engine has command, cases, code, timeout_s and targets"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"code\": \"engine.py\", "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.code: must be a non-empty list of "
                  "strings, e.g. [\"../tools/engines/my_engine.py\"]"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"code\": [\"no_such.py\"], "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.code: 'no_such.py' is neither a file nor "
                  "a folder (paths are relative to repo)"},
        BadConfig{"{\"engines\": {\"e\": {\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e: has no command"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"code\": [\"\"], "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.code: must be a non-empty list of "
                  "non-empty strings, e.g. [\"../tools/engines/my_engine.py\"]; got \"\""},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"code\": [\"/etc/hostname\"], "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.code: '/etc/hostname' is absolute; paths "
                  "are relative to repo"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"code\": [\".\"], "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.code: '.' holds repo, the folder of the "
                  "case files; name the engine's own files and folders"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"code\": [\"..\"], "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.code: '..' holds repo, the folder of the "
                  "case files; name the engine's own files and folders"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [], \"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.command: must be a non-empty list of "
                  "strings, e.g. [\"python3\", \"../tools/engines/my_engine.py\"], run in this file's "
                  "folder"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"targets\": {\"cuda bf16\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.targets: 'cuda bf16': 'cuda' is a "
                  "built-in backend; an engine target needs a name of its own, e.g. 'mykernels "
                  "fp32'"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"targets\": {\"e int8\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.targets: unknown precision 'int8' in "
                  "engine target 'e int8' (known: fp32, tf32, bf16, fp16)"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"targets\": {\"e fp32\": 1}}}}",
                  "repo/pinmark-engines.json: engines.e.targets.e fp32: a target's options are "
                  "an object passed to the engine, got 1"},
        BadConfig{"{\"engines\": {\"a\": {\"command\": [\"x\"], \"targets\": {\"t fp32\": {}}}, "
                  "\"b\": {\"command\": [\"y\"], \"targets\": {\"t fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.b.targets: target 't fp32' is named by "
                  "engine 'a' too"},
        BadConfig{"{\"engines\": {\"e\": {\"command\": [\"x\"], \"timeout_s\": 0, "
                  "\"targets\": {\"e fp32\": {}}}}}",
                  "repo/pinmark-engines.json: engines.e.timeout_s: must be a number of seconds in "
                  "(0, 86400], got 0"},
        BadConfig{"{\"engine\": {}}",
                  "repo/pinmark-engines.json: must be an object {\"engines\": {NAME: {command, "
                  "cases, targets}}}"},
        BadConfig{"{\"engines\": {}", "repo/pinmark-engines.json: not valid JSON: "}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST_F(Engines, ABrokenConfigurationFailsEveryCaseUnderItAndIsNeverPinned) {
  fs::create_directories(dir_.file("models"));
  write_file(dir_.file(kEngineConfigName), "{\"engines\": 3}");
  const std::string path = dir_.file("models/case.md");
  write_file(path, kCase);
  const FileRun r = run(path);
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_TRUE(contains(unpinnable(r), "pinmark-engines.json: engines: must map each engine's "
                                      "name to its command, cases and targets"))
      << unpinnable(r);
  EXPECT_EQ(r.outcomes[0].actual, r.parsed.cases[0].text);
}

TEST_F(Engines, AnEmptyCodeFolderIsAnError) {
  json config = json::parse(config_text({{"mode", "exact"}}));
  config["engines"]["fake"]["code"] = {"engine_src"};
  fs::create_directories(dir_.file("engine_src"));
  try {
    parse_engine_config(config.dump(), dir_.file(kEngineConfigName));
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "engines.fake.code: 'engine_src' is a folder with no files"))
        << e.what();
  }
}

// The run's summary counts a case that pins an Errors section among the passing ones only when
// it passes: under a broken configuration it fails like every other case.
TEST_F(Engines, AFailingCaseThatPinsErrorsIsNotCountedAsPassing) {
  fs::create_directories(dir_.file("models"));
  const std::string path = dir_.file("models/case.md");
  write_file(path,
             "# T\n\n## Bad\n\n### Config\n\n```json\n{\"vocab_size\": 32, \"hidden_size\": 16, "
             "\"intermediate_size\": 40, \"num_hidden_layers\": 1, \"num_attention_heads\": 3}\n"
             "```\n\n### Inputs\n\n```json\n{\"prompts\": [[1, 2]]}\n```\n");
  {
    std::ostringstream out, err;
    run_command_line({"run", path, "--regenerate", "-q"}, out, err);
    ASSERT_TRUE(contains(read_file(path), "### Errors")) << read_file(path);
  }
  {
    std::ostringstream out, err;
    run_command_line({"run", path, "-q"}, out, err);
    EXPECT_TRUE(contains(out.str(), "1 of the passing cases pin an Errors section")) << out.str();
  }
  write_file(dir_.file(kEngineConfigName), "{\"engines\": 3}");
  std::ostringstream out, err;
  run_command_line({"run", path, "-q"}, out, err);
  EXPECT_TRUE(contains(out.str(), "0 passed, 1 failed")) << out.str();
  EXPECT_FALSE(contains(out.str(), "pin an Errors section")) << out.str();
}

}  // namespace
}  // namespace pinmark
