// Putting text the driver did not write (error messages quoting a user's key, a tap name)
// into a golden without letting it add Markdown structure: a fenced block its body cannot
// close, inline code its text cannot end, one line per message, and only valid UTF-8.
// Header-only, so every target that links the driver (tests, fuzzers) has it without build changes.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>

namespace pinmark {

// `text` with every byte that is not part of a valid UTF-8 sequence written as `\xNN`, and
// NUL as `\x00`; valid text (line endings included) is returned unchanged. Reports no errors.
std::string valid_utf8(std::string_view text);

// `text` as one line of valid UTF-8: line feed, carriage return and tab as `\n`, `\r`, `\t`,
// other control characters (C0, DEL) and invalid bytes as `\xNN`. Reports no errors.
std::string one_line(std::string_view text);

// A fenced code block holding `body` (made valid UTF-8; a final line ending is added when
// missing). The fence is a run of backticks longer than any run of backticks in the body
// (three at least), so no line of the body can close it. No line ending after the closing
// fence. Reports no errors.
std::string fenced_block(std::string_view body, std::string_view info = "text");

// `text` as a code span: one line, between backtick runs longer than any run inside it, padded
// with a space when it starts or ends with a backtick. Reports no errors.
std::string inline_code(std::string_view text);

// Implementation.

namespace fence_detail {

inline std::string hex_escape(unsigned char byte) {
  char out[5];
  std::snprintf(out, sizeof out, "\\x%02X", byte);
  return out;
}

// Length of the valid UTF-8 sequence starting at text[i], or 0 when the byte there does not
// begin one (stray continuation byte, overlong form, surrogate, past U+10FFFF, truncated).
inline size_t utf8_sequence_length(std::string_view text, size_t i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = at(i);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (at(i + 1) < low || at(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return length;
}

// Escapes invalid bytes and NUL; with `single_line`, all control characters as well.
inline std::string escape(std::string_view text, bool single_line) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      out += hex_escape(c);
      ++i;
      continue;
    }
    if (length == 1 && (c == 0 || (single_line && (c < 0x20 || c == 0x7F)))) {
      if (single_line && c == '\n') out += "\\n";
      else if (single_line && c == '\r') out += "\\r";
      else if (single_line && c == '\t') out += "\\t";
      else out += hex_escape(c);
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

inline size_t longest_backtick_run(std::string_view text) {
  size_t longest = 0, run = 0;
  for (char c : text) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return longest;
}

}  // namespace fence_detail

inline std::string valid_utf8(std::string_view text) { return fence_detail::escape(text, false); }

inline std::string one_line(std::string_view text) { return fence_detail::escape(text, true); }

inline std::string fenced_block(std::string_view body, std::string_view info) {
  std::string content = valid_utf8(body);
  if (!content.empty() && content.back() != '\n') content += '\n';
  const std::string fence(std::max<size_t>(3, fence_detail::longest_backtick_run(content) + 1), '`');
  // The info string of a backtick fence may not hold a backtick.
  std::string safe_info = one_line(info);
  safe_info.erase(std::remove(safe_info.begin(), safe_info.end(), '`'), safe_info.end());
  return fence + safe_info + "\n" + content + fence;
}

inline std::string inline_code(std::string_view text) {
  const std::string content = one_line(text);
  const std::string ticks(fence_detail::longest_backtick_run(content) + 1, '`');
  const bool pad = !content.empty() && (content.front() == '`' || content.back() == '`');
  return ticks + (pad ? " " : "") + content + (pad ? " " : "") + ticks;
}

}  // namespace pinmark
