// Opening files that a case names (checkpoint shards, indexes, config.json, reference.json)
// only when they are regular files. A FIFO would block the open or the read forever, and a
// device such as /dev/zero never ends, so both are refused before a byte is read. Links are
// followed first: the Hugging Face cache makes every file of a snapshot a link into its blobs.
#pragma once

#include <cstdint>
#include <string>

namespace pinmark {

// What the file at `path` is, after following links: "a regular file", "a directory",
// "a FIFO", "a character device", "a block device", "a socket", "missing", or
// "unreachable (Permission denied)" when a folder on the way cannot be searched.
std::string file_kind(const std::string& path);

// An open read-only descriptor of `path` and the file's size. The open does not block on a
// FIFO. Throws std::runtime_error starting with `label` (the name to show for the file) when it
// cannot be opened or is not a regular file, naming what it is ("model.safetensors is a FIFO,
// not a regular file").
struct RegularFile {
  int fd = -1;
  uint64_t size = 0;
};
RegularFile open_regular_file(const std::string& path, const std::string& label);

// The whole of the regular file `path`. Throws as open_regular_file does, and also when the
// file is larger than `max_bytes` or cannot be read, each message starting with `label`.
std::string read_regular_file(const std::string& path, const std::string& label,
                              uint64_t max_bytes = uint64_t{1} << 30);

}  // namespace pinmark
