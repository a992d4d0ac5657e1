#include "driver/checkpoint_config.h"

#include <filesystem>

#include "driver/golden_io.h"
#include "driver/hf_config.h"
#include "runtime/regular_file.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;

// The nearest folder above `start` holding .git; `start` itself when there is none.
fs::path repository_root(const fs::path& start) {
  for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    std::error_code ignored;
    if (fs::exists(dir / ".git", ignored)) return dir;
    if (dir == dir.parent_path()) break;
  }
  return start;
}

bool inside(const fs::path& path, const fs::path& root) {
  const fs::path relative = path.lexically_relative(root);
  return !relative.empty() && *relative.begin() != "..";
}

}  // namespace

bool names_checkpoint(const JsonBlock& config_block) {
  const auto& v = config_block.value;
  return v.contains("pinmark") && v["pinmark"].is_object() && v["pinmark"].contains("checkpoint");
}

void read_checkpoint_config(const JsonBlock& config_block, const std::string& case_file,
                            CaseSpec& spec, std::vector<CaseProblem>& problems) {
  const auto& v = config_block.value;
  for (const auto& [key, value] : v.items()) {
    (void)value;
    if (key != "pinmark")
      problems.push_back(config_block.problem_at(
          key, "'" + key + "' beside a checkpoint: the model's keys come from the checkpoint's "
                           "config.json"));
  }
  for (const auto& [key, value] : v["pinmark"].items()) {
    (void)value;
    if (key != "checkpoint")
      problems.push_back(config_block.problem_at(
          key, "pinmark." + key + " does not apply to a checkpoint (known: checkpoint)"));
  }
  const auto& name = v["pinmark"]["checkpoint"];
  if (!name.is_string() || name.get<std::string>().empty()) {
    problems.push_back(config_block.problem_at(
        "checkpoint", "pinmark.checkpoint must be a folder path relative to the case file"));
    return;
  }
  if (case_file.empty()) {
    problems.push_back(config_block.problem_at(
        "checkpoint", "a checkpoint is found relative to its case file, and this case has none"));
    return;
  }
  const fs::path case_dir = fs::absolute(case_file).parent_path().lexically_normal();
  const fs::path written = name.get<std::string>();
  std::error_code error;
  const fs::path dir = fs::weakly_canonical(case_dir / written, error);
  const fs::path root = fs::weakly_canonical(repository_root(case_dir), error);
  if (written.is_absolute() || !inside(dir, root)) {
    problems.push_back(config_block.problem_at(
        "checkpoint", "checkpoint '" + written.string() +
                          "' is outside the repository; a case may only read checkpoints "
                          "inside it"));
    return;
  }
  const fs::path config_path = dir / "config.json";
  // Named as the case wrote the folder, never by the checkout's absolute path.
  const std::string config_label = (written / "config.json").lexically_normal().generic_string();
  const std::string kind = file_kind(config_path.string());
  if (kind == "missing") {
    problems.push_back(config_block.problem_at(
        "checkpoint", "checkpoint '" + written.string() + "' has no config.json"));
    return;
  }
  if (kind != "a regular file") {
    problems.push_back(config_block.problem_at(
        "checkpoint", config_label + " is " + kind + ", not a regular file"));
    return;
  }

  // config.json read like a Config block; its problems name the file (relative to the case).
  Section section;
  section.name = config_label;
  section.line = config_block.section->line;
  CodeBlock block;
  block.info = "json";
  block.first_line = 1;
  try {
    block.literal = read_regular_file(config_path.string(), config_label, uint64_t{16} << 20);
  } catch (const std::exception& e) {
    problems.push_back(config_block.problem_at("checkpoint", e.what()));
    return;
  }
  section.blocks.push_back(block);
  std::vector<CaseProblem> found;
  if (auto parsed = read_json_block(section, found)) {
    read_config(*parsed, spec.model, found);
    spec.checkpoint_unread_keys = unread_config_keys(parsed->value);
  }
  for (CaseProblem& p : found) {
    // The terminal's file:line is the case's; the golden's `where` names config.json's line.
    p.file_line = config_block.section->line;
    problems.push_back(std::move(p));
  }
  spec.checkpoint = dir.string();
  spec.checkpoint_label = written.generic_string();
}

}  // namespace pinmark
