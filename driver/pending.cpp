#include "driver/pending.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "driver/case_file.h"
#include "driver/file_run.h"
#include "driver/fingerprint.h"
#include "driver/golden_io.h"

namespace pinmark {
namespace {

const std::string kHeadPrefix = "<!-- pinmark pending: golden ";
const std::string kHeadSuffix = "; `pinmark accept` puts the rest of this file in its place -->";

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string pending_path(const std::string& golden) { return golden + ".pending"; }

std::string golden_digest(const std::string& golden_bytes) {
  Fnv1a h;
  h.add(golden_bytes);
  return h.hex(16);
}

std::string pending_file_text(const std::string& golden_bytes, const std::string& new_text) {
  return kHeadPrefix + golden_digest(golden_bytes) + kHeadSuffix + "\n" + new_text;
}

void write_pending(const std::string& golden, const std::string& golden_bytes,
                   const std::string& new_text) {
  write_file_atomically(pending_path(golden), pending_file_text(golden_bytes, new_text));
}

bool remove_pending(const std::string& golden) {
  std::error_code error;
  const bool removed = std::filesystem::remove(pending_path(golden), error);
  if (error)
    throw std::runtime_error("cannot remove " + pending_path(golden) + ": " + error.message());
  return removed;
}

Pending read_pending(const std::string& path) {
  const std::string bytes = read_text_file(path);
  Pending p;
  p.path = path;
  p.golden = ends_with(path, ".pending") ? path.substr(0, path.size() - 8) : path;
  const size_t eol = bytes.find('\n');
  const std::string head = bytes.substr(0, eol);
  const size_t digest_size = 16;
  if (!ends_with(path, ".md.pending") || eol == std::string::npos ||
      head.size() != kHeadPrefix.size() + digest_size + kHeadSuffix.size() ||
      head.rfind(kHeadPrefix, 0) != 0 || !ends_with(head, kHeadSuffix))
    throw std::runtime_error(path + " is not a pending golden written by pinmark (its first line "
                             "must name the golden's digest); delete it or run the cases again");
  p.digest = head.substr(kHeadPrefix.size(), digest_size);
  p.text = bytes.substr(eol + 1);
  return p;
}

bool pending_is_current(const Pending& pending, const std::string& golden_bytes) {
  return golden_digest(golden_bytes) == pending.digest;
}

std::vector<std::string> find_pendings(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  for (const std::string& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      for (fs::recursive_directory_iterator it(path, error), end; !error && it != end;
           it.increment(error))
        if (it->is_regular_file() && ends_with(it->path().filename().string(), ".md.pending"))
          found.push_back(it->path().lexically_normal().string());
      if (error) throw std::runtime_error("cannot read the folder " + path + ": " + error.message());
    } else if (ends_with(path, ".pending") && fs::exists(path, error)) {
      found.push_back(path);
    } else if (fs::exists(pending_path(path), error)) {
      found.push_back(pending_path(path));
    } else if (!fs::exists(path, error)) {
      throw std::runtime_error("no such file or folder: " + path);
    }
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

bool update_pending_case(const std::string& golden, const std::string& slug,
                         const std::string& from, const std::string& to) {
  FileLock lock(golden);
  const std::string golden_bytes = read_text_file(golden);
  // The text of case `slug` in a file, if the file is valid and has it.
  auto text_of = [&](const std::string& file_text) -> std::optional<std::string> {
    const CaseFile parsed = parse_case_file(file_text);
    if (!parsed.problems.empty()) return std::nullopt;
    for (const Case& c : parsed.cases)
      if (c.slug == slug) return c.text;
    return std::nullopt;
  };
  if (text_of(golden_bytes) != from) return false;
  std::string base = golden_bytes;
  std::error_code error;
  if (std::filesystem::exists(pending_path(golden), error)) {
    try {
      Pending p = read_pending(pending_path(golden));
      if (pending_is_current(p, golden_bytes)) base = std::move(p.text);
    } catch (const std::runtime_error&) {
      // Not a pending this pinmark wrote: replaced by one that is.
    }
  }
  std::optional<std::string> in_base = text_of(base);
  if (!in_base) {
    base = golden_bytes;
    in_base = from;
  }
  const std::string now = *in_base;
  std::vector<std::string> skipped;
  const std::string text =
      now == to ? base : regenerate_text(golden, base, {{slug, CaseRewrite(now, to)}}, skipped);
  if (text == golden_bytes)
    remove_pending(golden);
  else
    write_pending(golden, golden_bytes, text);
  return true;
}

void accept_pending(const std::string& pending_file) {
  const Pending p = read_pending(pending_file);
  if (!std::filesystem::exists(p.golden))
    throw std::runtime_error("cannot accept " + p.path + ": its golden " + p.golden +
                             " is gone; run `pinmark reject` to drop it");
  FileLock lock(p.golden);
  const std::string golden = read_text_file(p.golden);
  if (!pending_is_current(p, golden))
    throw std::runtime_error("cannot accept " + p.path + ": " + p.golden +
                             " changed since it was written; run the cases again for a new one, "
                             "or `pinmark reject` to drop it");
  if (golden != p.text) write_file_atomically(p.golden, p.text);
  if (::unlink(p.path.c_str()) != 0)
    throw std::runtime_error("accepted " + p.path + " but cannot remove it: " +
                             std::strerror(errno));
}

}  // namespace pinmark
