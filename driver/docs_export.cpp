#include "driver/docs_export.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "driver/case_discovery.h"
#include "driver/case_file.h"
#include "driver/fence.h"
#include "driver/golden_io.h"

namespace pinmark {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kBehaviorDir = "docs/behavior";

constexpr const char* kSummary =
    "pinmark pins the numerics of transformer inference in Markdown. Each case file describes "
    "small decoder-only models (Hugging Face `config.json` keys: Llama, Mistral, Qwen2, Qwen3, "
    "Gemma, Gemma 2, GPT-2, Mixtral) or single kernels, and what to feed them; pinmark runs "
    "every case on an fp64 reference (the oracle) and on each hardware x precision target, and "
    "writes the logits, greedy tokens, per-layer tensor digests and each target's error against "
    "the oracle back into the file, which is the golden. The pages under docs/behavior/ are "
    "those goldens compiled for reading: each case's prose, its setup in a sentence and its key "
    "numbers, linked back to the case.";

std::string lf(std::string text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out += '\n';
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Everything after the first line (a heading), without the blank lines that follow it.
std::string body_after_heading(const std::string& text) {
  const size_t eol = text.find('\n');
  if (eol == std::string::npos) return "";
  return trim(text.substr(eol + 1));
}

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? separator : "") + parts[i];
  return out;
}

// A JSON value as a reader would write it, cut short when long.
std::string show(const json& value) {
  std::string s = value.is_string() ? value.get<std::string>() : value.dump();
  if (s.size() > 200) s = s.substr(0, 197) + "...";
  return s;
}

// "`key: value`", one code span, so that no character of the value reads as Markdown.
std::string code(const std::string& key, const json& value) {
  std::string s = key + ": " + show(value);
  std::replace(s.begin(), s.end(), '`', '\'');
  return "`" + s + "`";
}

// The first ```json block of a section, parsed; nullopt when there is none or it is invalid.
std::optional<json> json_of(const Section* section) {
  if (!section || section->blocks.empty()) return std::nullopt;
  json value = json::parse(section->blocks[0].literal, nullptr, false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  return value;
}

const Section* find_section(const Case& c, const std::string& name) {
  for (const Section& s : c.sections)
    if (s.name == name) return &s;
  return nullptr;
}

// The first Markdown table of a section: header cells, then rows of cells.
std::vector<std::vector<std::string>> table_of(const Section* section) {
  std::vector<std::vector<std::string>> rows;
  if (!section) return rows;
  bool in_table = false;
  for (const std::string& line : lines_of(lf(section->text))) {
    const std::string t = trim(line);
    if (t.empty() || t[0] != '|') {
      if (in_table) break;
      continue;
    }
    in_table = true;
    std::vector<std::string> cells;
    std::string cell;
    for (size_t i = 1; i < t.size(); ++i) {
      if (t[i] == '|' && t[i - 1] != '\\') {
        cells.push_back(trim(cell));
        cell.clear();
      } else {
        cell += t[i];
      }
    }
    if (!cells.empty() && cells[0].rfind("---", 0) == 0) continue;  // the separator row
    rows.push_back(cells);
  }
  return rows;
}

int column(const std::vector<std::string>& header, const std::string& name) {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

std::string cell(const std::vector<std::string>& row, int index) {
  return index >= 0 && index < static_cast<int>(row.size()) ? row[index] : "";
}

// Config keys that say nothing about how the model computes.
bool boilerplate_key(const std::string& key) {
  static const std::set<std::string> keys = {
      "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
      "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "use_cache",
      "attention_dropout", "pinmark", "hidden_size", "intermediate_size", "num_hidden_layers",
      "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
      "max_position_embeddings", "n_embd", "n_layer", "n_head", "n_positions", "n_inner"};
  return keys.count(key) > 0;
}

std::string model_sentence(const json& config) {
  std::string s;
  auto get = [&](std::initializer_list<const char*> names) -> std::string {
    for (const char* n : names)
      if (config.contains(n) && !config[n].is_null()) return show(config[n]);
    return "";
  };
  std::string arch;
  if (config.contains("architectures") && config["architectures"].is_array() &&
      !config["architectures"].empty())
    arch = show(config["architectures"][0]);
  const std::string type = get({"model_type"});
  if (!arch.empty())
    s += "`" + arch + "`" + (type.empty() ? "" : " (`" + type + "`)");
  else if (!type.empty())
    s += "`" + type + "`";
  else
    s += "a Llama-style model";
  std::vector<std::string> dims;
  if (auto v = get({"num_hidden_layers", "n_layer"}); !v.empty())
    dims.push_back(v + (v == "1" ? " layer" : " layers"));
  if (auto v = get({"hidden_size", "n_embd"}); !v.empty()) dims.push_back("hidden size " + v);
  if (auto v = get({"intermediate_size", "n_inner"}); !v.empty())
    dims.push_back("intermediate size " + v);
  const std::string heads = get({"num_attention_heads", "n_head"});
  const std::string kv = get({"num_key_value_heads"});
  const std::string head_dim = get({"head_dim"});
  if (!heads.empty())
    dims.push_back(heads + " query heads" + (kv.empty() ? "" : " over " + kv + " KV heads") +
                   (head_dim.empty() ? "" : " of width " + head_dim));
  if (auto v = get({"vocab_size"}); !v.empty()) dims.push_back("vocabulary " + v);
  if (!dims.empty()) s += ": " + join(dims, ", ");
  std::vector<std::string> others;
  for (auto it = config.begin(); it != config.end(); ++it)
    if (!boilerplate_key(it.key()) && !it.value().is_null())
      others.push_back(code(it.key(), it.value()));
  if (!others.empty()) s += "; also " + join(others, ", ");
  return s;
}

std::string setup_line(const Case& c, const fs::path& case_dir) {
  std::vector<std::string> parts;
  if (const Section* kernel = find_section(c, "Kernel")) {
    if (auto k = json_of(kernel)) {
      std::vector<std::string> args;
      for (auto it = k->begin(); it != k->end(); ++it)
        if (it.key() != "op") args.push_back(code(it.key(), it.value()));
      parts.push_back("kernel `" + (k->contains("op") ? show((*k)["op"]) : std::string("?")) +
                      "`" + (args.empty() ? "" : " with " + join(args, ", ")));
    } else {
      parts.push_back("a Kernel block that is not a JSON object");
    }
  }
  if (const Section* config = find_section(c, "Config")) {
    if (auto cfg = json_of(config)) {
      const json pin = cfg->contains("pinmark") && (*cfg)["pinmark"].is_object() ? (*cfg)["pinmark"]
                                                                                 : json::object();
      if (pin.contains("checkpoint") && pin["checkpoint"].is_string()) {
        const std::string folder = pin["checkpoint"].get<std::string>();
        std::string what = "the checkpoint `" + folder + "`";
        try {
          json loaded = json::parse(read_text_file((case_dir / folder / "config.json").string()));
          if (loaded.is_object()) what += ", " + model_sentence(loaded);
        } catch (const std::exception&) {
        }
        parts.push_back(what);
      } else {
        std::string what = model_sentence(*cfg);
        if (pin.contains("seed")) what += "; synthetic weights, seed " + show(pin["seed"]);
        std::vector<std::string> more;
        for (auto it = pin.begin(); it != pin.end(); ++it)
          if (it.key() != "seed") more.push_back(code(it.key(), it.value()));
        if (!more.empty()) what += "; pinmark " + join(more, ", ");
        parts.push_back(what);
      }
    } else {
      parts.push_back("a Config block that is not a JSON object");
    }
  }
  if (auto inputs = json_of(find_section(c, "Inputs"))) {
    std::string what;
    if (inputs->contains("prompts") && (*inputs)["prompts"].is_array()) {
      std::vector<std::string> lengths;
      for (const json& p : (*inputs)["prompts"])
        lengths.push_back(p.is_array() ? std::to_string(p.size()) : "?");
      what = std::to_string(lengths.size()) + (lengths.size() == 1 ? " prompt" : " prompts") +
             " of " + join(lengths, ", ") + " tokens";
    }
    if (inputs->contains("decode")) what += (what.empty() ? "" : ", ") + show((*inputs)["decode"]) + " decode steps";
    if (!what.empty()) parts.push_back(what);
  }
  if (auto targets = json_of(find_section(c, "Targets"))) {
    std::vector<std::string> t;
    for (auto it = targets->begin(); it != targets->end(); ++it)
      t.push_back(code(it.key(), it.value()));
    parts.push_back("targets set: " + join(t, ", "));
  }
  if (parts.empty()) return "";
  std::string s = join(parts, "; ");
  s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s + ".";
}

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

// The oracle's three largest logits of each sequence, as the Logits section prints them.
std::string top_tokens_line(const Section* logits) {
  if (!logits || logits->blocks.empty()) return "";
  std::vector<std::string> out;
  std::string header;
  std::vector<std::pair<double, std::string>> values;  // (logit, "id (value)")
  int next_index = 0;
  auto flush = [&] {
    if (header.empty()) return;
    std::stable_sort(values.begin(), values.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::string> top;
    for (size_t i = 0; i < values.size() && i < 3; ++i) top.push_back(values[i].second);
    if (!top.empty()) out.push_back(header + ": " + join(top, ", "));
    values.clear();
    next_index = 0;
  };
  for (const std::string& raw : lines_of(lf(logits->blocks[0].literal))) {
    const std::string line = trim(raw);
    if (line.rfind("sequence ", 0) == 0 && !line.empty() && line.back() == ':') {
      flush();
      header = line.substr(0, line.size() - 1);
    } else if (line.rfind("top ", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;) {
        const size_t eq = w.find('=');
        if (eq == std::string::npos || !is_number(w.substr(eq + 1))) continue;
        values.emplace_back(std::strtod(w.c_str() + eq + 1, nullptr),
                            w.substr(0, eq) + " (" + w.substr(eq + 1) + ")");
      }
    } else if (!line.empty() && line[0] == '[') {
      const size_t close = line.find(']');
      if (close == std::string::npos) continue;
      next_index = std::atoi(line.c_str() + 1);
      std::istringstream words(line.substr(close + 1));
      for (std::string w; words >> w;) {
        if (!is_number(w)) continue;
        values.emplace_back(std::strtod(w.c_str(), nullptr),
                            std::to_string(next_index) + " (" + w + ")");
        ++next_index;
      }
    }
  }
  flush();
  return join(out, "; ");
}

std::string tokens_line(const Section* tokens) {
  if (!tokens || tokens->blocks.empty()) return "";
  std::vector<std::string> out;
  for (const std::string& raw : lines_of(lf(tokens->blocks[0].literal))) {
    const std::string line = trim(raw);
    const size_t colon = line.find(':'), bar = line.find('|');
    if (colon == std::string::npos || bar == std::string::npos) continue;
    out.push_back(line.substr(0, colon) + " continues with " + trim(line.substr(bar + 1)));
  }
  return join(out, "; ");
}

std::string errors_line(const Section* errors) {
  if (!errors || errors->blocks.empty()) return "";
  std::vector<std::string> out;
  for (const std::string& raw : lines_of(lf(errors->blocks[0].literal)))
    if (!trim(raw).empty()) out.push_back("`" + trim(raw) + "`");
  return join(out, "; ");
}

std::string numerics_line(const Section* numerics) {
  const auto table = table_of(numerics);
  if (table.size() < 2) return "";
  const auto& h = table[0];
  const int target = column(h, "target"), rel = column(h, "rel L2"), tol = column(h, "tolerance"),
            verdict = column(h, "verdict"), first = column(h, "first divergence"),
            top1 = column(h, "top-1");
  std::vector<std::string> out;
  for (size_t i = 1; i < table.size(); ++i) {
    const auto& r = table[i];
    std::string s = cell(r, target) + " " + cell(r, verdict);
    std::vector<std::string> detail;
    if (!cell(r, rel).empty() && cell(r, rel) != "—")
      detail.push_back("rel L2 " + cell(r, rel) + " against " + cell(r, tol));
    if (!cell(r, top1).empty() && cell(r, top1) != "—") detail.push_back("top-1 " + cell(r, top1));
    if (!cell(r, first).empty() && cell(r, first) != "—")
      detail.push_back("first divergence " + cell(r, first));
    if (!detail.empty()) s += " (" + join(detail, ", ") + ")";
    out.push_back(s);
  }
  return join(out, "; ");
}

std::string reference_line(const Section* reference) {
  const auto table = table_of(reference);
  if (table.size() < 2) return "";
  const auto& h = table[0];
  const int seq = column(h, "sequence"), rel = column(h, "rel L2"), greedy = column(h, "greedy"),
            verdict = column(h, "verdict");
  std::vector<std::string> out;
  for (size_t i = 1; i < table.size(); ++i)
    out.push_back("sequence " + cell(table[i], seq) + " " + cell(table[i], verdict) + " (rel L2 " +
                  cell(table[i], rel) + ", greedy " + cell(table[i], greedy) + ")");
  std::string bound;
  const std::string text = lf(reference->text);
  const size_t at = text.find("bound ");
  if (at != std::string::npos) {
    const size_t end = text.find_first_of(",; \n", at + 6);
    bound = text.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
  }
  return join(out, "; ") + (bound.empty() ? "" : ", bound " + bound);
}

std::string dumps_line(const Section* dumps) {
  const auto table = table_of(dumps);
  if (table.size() < 2) return "";
  const int tap = column(table[0], "tap");
  std::string s = std::to_string(table.size() - 1) + (table.size() == 2 ? " tensor" : " tensors");
  s += table.size() == 2 ? " (" + cell(table[1], tap) + ")"
                         : " (" + cell(table[1], tap) + " to " + cell(table.back(), tap) + ")";
  return s + " digested for review in the case file";
}

// The first sentence of the first paragraph of prose after a heading, on one line.
std::string first_sentence(const std::string& markdown) {
  std::string paragraph;
  bool in_fence = false;
  for (const std::string& raw : lines_of(lf(markdown))) {
    const std::string line = trim(raw);
    if (line.rfind("```", 0) == 0 || line.rfind("~~~", 0) == 0) {
      in_fence = !in_fence;
      continue;
    }
    if (in_fence) continue;
    if (line.empty()) {
      if (!paragraph.empty()) break;
      continue;
    }
    if (line[0] == '#' || line[0] == '|' || line[0] == '<') {
      if (!paragraph.empty()) break;
      continue;
    }
    paragraph += (paragraph.empty() ? "" : " ") + line;
  }
  // The sentence ends at the first ". " outside a code span; "e.g. ", "i.e. " and ".. " do not
  // end one.
  bool in_code = false;
  for (size_t at = 0; at + 1 < paragraph.size(); ++at) {
    if (paragraph[at] == '`') in_code = !in_code;
    if (in_code || paragraph[at] != '.' || paragraph[at + 1] != ' ') continue;
    if (at >= 1 && paragraph[at - 1] == '.') continue;
    if (at >= 3 && (paragraph.compare(at - 3, 3, "e.g") == 0 || paragraph.compare(at - 3, 3, "i.e") == 0))
      continue;
    paragraph = paragraph.substr(0, at + 1);
    break;
  }
  // A sentence that introduces a block ("... the same kernel:") ends there.
  if (!paragraph.empty() && paragraph.back() == ':') paragraph.back() = '.';
  if (paragraph.size() > 240) paragraph = paragraph.substr(0, 237) + "...";
  return paragraph;
}

std::string title_of(const std::string& markdown) {
  const std::string first = lf(markdown).substr(0, lf(markdown).find('\n'));
  return trim(first.rfind("# ", 0) == 0 ? first.substr(2) : first);
}

std::string up_to_root(const std::string& page) {
  std::string up;
  for (char ch : page)
    if (ch == '/') up += "../";
  return up;
}

struct Page {
  DocsFile file;
  std::string title, description, group;
};

Page compile_page(const std::string& root, const std::string& path) {
  const std::string rel = relative_to(path, root);
  const CaseFile parsed = parse_case_file(read_text_file(path));
  if (!parsed.problems.empty())
    throw std::runtime_error(rel + ":" + std::to_string(parsed.problems[0].line) + ": " +
                             one_line(parsed.problems[0].message));
  const std::string in_cases = relative_to(rel, "cases");
  Page page;
  page.file.path = std::string(kBehaviorDir) + "/" + in_cases;
  const size_t slash = in_cases.find('/');
  page.group = slash == std::string::npos ? "" : in_cases.substr(0, slash);
  const std::string up = up_to_root(page.file.path);
  const std::string preamble = lf(parsed.preamble);
  page.title = title_of(preamble);
  page.description = first_sentence(body_after_heading(preamble));

  std::ostringstream out;
  out << "# " << page.title << "\n\n"
      << "<!-- Generated by `pinmark docs` from " << rel
      << "; edit the case file and run `pinmark docs`, not this page. -->\n\n"
      << "Compiled from [`" << rel << "`](" << up << rel << "): " << parsed.cases.size()
      << (parsed.cases.size() == 1 ? " case" : " cases")
      << ". The prose is the case file's; each case's setup and key numbers are summarised from "
         "its golden (the oracle is fp64 on the CPU; every target's error is measured against "
         "it).\n";
  if (const std::string prose = body_after_heading(preamble); !prose.empty()) out << "\n" << prose << "\n";
  const fs::path case_dir = fs::path(path).parent_path();
  for (const Case& c : parsed.cases) {
    out << "\n## " << c.title << "\n";
    if (const std::string prose = body_after_heading(lf(c.head)); !prose.empty())
      out << "\n" << prose << "\n";
    std::vector<std::pair<std::string, std::string>> facts = {
        {"Setup", setup_line(c, case_dir)},
        {"Rejected with", errors_line(find_section(c, "Errors"))},
        {"Oracle's top logits", top_tokens_line(find_section(c, "Logits"))},
        {"Greedy decoding", tokens_line(find_section(c, "Tokens"))},
        {"Targets", numerics_line(find_section(c, "Numerics"))},
        {"Against transformers", reference_line(find_section(c, "Reference"))},
        {"Dumps", dumps_line(find_section(c, "Dumps"))},
    };
    out << "\n";
    for (const auto& [name, text] : facts)
      if (!text.empty()) out << "- **" << name << ":** " << text << "\n";
    out << "- **Case:** [`" << rel << "` line " << c.line << ", `" << c.slug << "`](" << up << rel
        << "#" << github_anchor(c.title) << ")\n";
  }
  page.file.text = out.str();
  return page;
}

std::string llms_txt(const std::string& root, const std::vector<Page>& pages) {
  std::ostringstream out;
  out << "# pinmark\n\n> " << kSummary << "\n\n"
      << "Generated by `pinmark docs` from README.md, docs/ and cases/; `pinmark docs --check` "
         "fails when it is stale.\n\n## Docs\n\n";
  std::vector<std::string> docs;
  if (fs::exists(fs::path(root) / "README.md")) docs.push_back("README.md");
  std::vector<std::string> others;
  if (fs::is_directory(fs::path(root) / "docs"))
    for (const auto& entry : fs::directory_iterator(fs::path(root) / "docs"))
      if (entry.is_regular_file() && entry.path().extension() == ".md")
        others.push_back("docs/" + entry.path().filename().string());
  std::sort(others.begin(), others.end());
  docs.insert(docs.end(), others.begin(), others.end());
  for (const std::string& d : docs) {
    const std::string text = lf(read_text_file((fs::path(root) / d).string()));
    out << "- [" << title_of(text) << "](" << d << "): " << first_sentence(body_after_heading(text))
        << "\n";
  }
  std::string group = "\1";
  for (const Page& p : pages) {
    if (p.group != group) {
      group = p.group;
      out << "\n## Behavior" << (group.empty() ? "" : ": " + group) << "\n\n";
    }
    out << "- [" << p.title << "](" << p.file.path << "): " << p.description << "\n";
  }
  return out.str();
}

}  // namespace

std::string github_anchor(const std::string& heading) {
  std::string out;
  for (unsigned char ch : heading) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch >= 0x80)
      out += static_cast<char>(std::tolower(ch));
    else if (ch == ' ')
      out += '-';
  }
  return out;
}

std::vector<DocsFile> compile_docs(const std::string& root) {
  const std::vector<std::string> files = find_case_files({(fs::path(root) / "cases").string()});
  std::vector<Page> pages;
  for (const std::string& path : files) pages.push_back(compile_page(root, path));
  std::stable_sort(pages.begin(), pages.end(),
                   [](const Page& a, const Page& b) { return a.group < b.group; });
  std::vector<DocsFile> out;
  for (const Page& p : pages) out.push_back(p.file);
  out.push_back({"llms.txt", llms_txt(root, pages)});
  return out;
}

int docs_command(const std::string& root, bool check, std::ostream& out, std::ostream& err) {
  std::vector<DocsFile> files;
  try {
    files = compile_docs(root);
  } catch (const std::exception& e) {
    err << "pinmark docs: " << one_line(e.what()) << "\n";
    return 2;
  }
  std::set<std::string> generated;
  int stale = 0, written = 0;
  try {
    for (const DocsFile& f : files) {
      generated.insert(f.path);
      const fs::path target = fs::path(root) / f.path;
      std::string current;
      bool exists = fs::exists(target);
      if (exists) current = read_text_file(target.string());
      if (exists && current == f.text) continue;
      if (check) {
        ++stale;
        out << "STALE   " << f.path << (exists ? ": differs from what pinmark docs generates" : ": missing")
            << "\n";
        continue;
      }
      fs::create_directories(target.parent_path());
      write_file_atomically(target.string(), f.text);
      ++written;
      out << "WROTE   " << f.path << "\n";
    }
    const fs::path behavior = fs::path(root) / kBehaviorDir;
    std::vector<std::string> extra;
    if (fs::is_directory(behavior))
      for (const auto& entry : fs::recursive_directory_iterator(behavior))
        if (entry.is_regular_file() && entry.path().extension() == ".md") {
          const std::string rel = relative_to(entry.path().string(), root);
          if (!generated.count(rel)) extra.push_back(rel);
        }
    std::sort(extra.begin(), extra.end());
    for (const std::string& rel : extra) {
      if (check) {
        ++stale;
        out << "STALE   " << rel << ": no case file generates it\n";
      } else {
        fs::remove(fs::path(root) / rel);
        ++written;
        out << "REMOVED " << rel << "\n";
      }
    }
  } catch (const std::exception& e) {
    err << "pinmark docs: " << one_line(e.what()) << "\n";
    return 2;
  }
  if (check && stale) {
    err << "pinmark docs: " << stale << " of the generated files " << (stale == 1 ? "is" : "are")
        << " stale: run pinmark docs and commit the result\n";
    return 1;
  }
  out << files.size() - 1 << " pages and llms.txt " << (check || written == 0 ? "are current" : "written")
      << (written ? " (" + std::to_string(written) + " changed)" : "") << "\n";
  return 0;
}

}  // namespace pinmark
