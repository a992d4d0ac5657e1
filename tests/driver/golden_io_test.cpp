// Reading and rewriting goldens: atomic replacement that keeps the file's mode, and
// rewrite_cases from several processes at once losing nothing.
#include "driver/golden_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "driver/case_file.h"
#include "driver/file_run.h"
#include "tests/driver/test_support.h"

namespace pinmark {
namespace {

using test::contains;
using test::read_file;
using test::TempDir;
using test::write_file;

std::vector<std::string> folder_entries(const std::string& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

ino_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST(ReadTextFile, ReadsBytesExactly) {
  TempDir dir;
  const std::string bytes = std::string("a\r\nb\0c\n\xff", 8);
  write_file(dir.file("f.md"), bytes);
  EXPECT_EQ(read_text_file(dir.file("f.md")), bytes);
}

TEST(ReadTextFile, MissingFileThrowsNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("no-such-golden.md");
  try {
    read_text_file(path);
    FAIL() << "no exception for a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), path)) << e.what();
  }
}

TEST(WriteFileAtomically, ReplacesTheContent) {
  TempDir dir;
  const std::string path = dir.file("golden.md");
  write_file(path, "old content that is longer than the new one\n");
  write_file_atomically(path, "new\n");
  EXPECT_EQ(read_file(path), "new\n");
  write_file_atomically(path, "");
  EXPECT_EQ(read_file(path), "");
}

TEST(WriteFileAtomically, KeepsTheFileMode) {
  TempDir dir;
  const std::string path = dir.file("golden.md");
  write_file(path, "old\n");
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  write_file_atomically(path, "new\n");
  EXPECT_EQ(mode_of(path), 0640u);
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  write_file_atomically(path, "newer\n");
  EXPECT_EQ(mode_of(path), 0755u);
  EXPECT_EQ(read_file(path), "newer\n");
}

// A new file (a pending golden, a report) gets the mode open() would give it, 0666 less the
// umask, not the 0600 of the temporary file it is written through.
TEST(WriteFileAtomically, ANewFileGetsTheUmasksMode) {
  TempDir dir;
  for (const mode_t mask : {mode_t{022}, mode_t{077}, mode_t{002}}) {
    const mode_t saved = ::umask(mask);
    const std::string path = dir.file("new-" + std::to_string(mask) + ".md");
    write_file_atomically(path, "text\n");
    ::umask(saved);
    EXPECT_EQ(mode_of(path), 0666u & ~static_cast<unsigned>(mask)) << "umask " << mask;
  }
}

TEST(WriteFileAtomically, LeavesNoTemporaryFiles) {
  TempDir dir;
  const std::string path = dir.file("golden.md");
  write_file(path, "old\n");
  for (int i = 0; i < 3; ++i) write_file_atomically(path, "version " + std::to_string(i) + "\n");
  EXPECT_EQ(folder_entries(dir.path()), std::vector<std::string>{"golden.md"});
}

TEST(WriteFileAtomically, ReplacesTheFileRatherThanWritingIntoIt) {
  // A reader holding the old file keeps seeing the old bytes: the new file is renamed over it.
  TempDir dir;
  const std::string path = dir.file("golden.md");
  write_file(path, "old\n");
  const ino_t before = inode_of(path);
  write_file_atomically(path, "new\n");
  EXPECT_NE(inode_of(path), before);
}

const char* const kSixCases =
    "# Six cases\n\nprose\n\n"
    "## Case 0\n\nold 0\n\n## Case 1\n\nold 1\n\n## Case 2\n\nold 2\n\n"
    "## Case 3\n\nold 3\n\n## Case 4\n\nold 4\n\n## Case 5\n\nold 5\n";

std::string new_text(int i) {
  // Much longer than the old text, so a lost update cannot hide behind a same-size write.
  std::string text = "## Case " + std::to_string(i) + "\n\nnew text of case " + std::to_string(i);
  for (int line = 0; line < 50; ++line) text += "\n\nparagraph " + std::to_string(line);
  return text;
}

TEST(RewriteCases, ReplacesOnlyTheNamedCases) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  EXPECT_TRUE(rewrite_cases(path, {{"case_2", "## Case 2\n\nrewritten"}}));
  const std::string expected =
      std::string(kSixCases).replace(std::string(kSixCases).find("## Case 2\n\nold 2"), 16,
                                     "## Case 2\n\nrewritten");
  EXPECT_EQ(read_file(path), expected);
}

TEST(RewriteCases, KeepsTheRestOfACrlfFileByteForByte) {
  // Rewriting one case of a file with Windows line endings leaves every other byte alone,
  // including the line endings of the prose around it.
  TempDir dir;
  const std::string path = dir.file("crlf.md");
  const std::string before = "# T\r\n\r\nprose\r\n\r\n## A\r\n\r\nold a\r\n\r\n";
  const std::string after = "## B\r\n\r\nold b\r\n";
  write_file(path, before + "## Middle\r\n\r\nold\r\n\r\n" + after);
  EXPECT_TRUE(rewrite_cases(path, {{"middle", "## Middle\r\n\r\nnew"}}));
  EXPECT_EQ(read_file(path), before + "## Middle\r\n\r\nnew\r\n\r\n" + after);
}

TEST(RewriteCases, NothingChangedWritesNothing) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  const ino_t before = inode_of(path);
  EXPECT_FALSE(rewrite_cases(path, {{"case_1", "## Case 1\n\nold 1"}}));
  EXPECT_EQ(inode_of(path), before);
  EXPECT_EQ(read_file(path), kSixCases);
}

TEST(RewriteCases, ConcurrentRewritesOfOneFileLoseNothing) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  constexpr int kChildren = 6;

  // Every child blocks on the pipe until the parent closes it, so all start at once.
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(gate[1]);
      char byte;
      while (::read(gate[0], &byte, 1) > 0) {
      }
      int status = 0;
      try {
        // Each child rewrites its own case several times, ending with its final text.
        for (int round = 0; round < 5; ++round)
          rewrite_cases(path, {{"case_" + std::to_string(i),
                                round == 4 ? new_text(i) : new_text(i) + "\n\nround " +
                                                               std::to_string(round)}});
      } catch (...) {
        status = 3;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  ::close(gate[0]);
  ::close(gate[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child failed: " << status;
  }

  const std::string text = read_file(path);
  CaseFile file = parse_case_file(text);
  EXPECT_TRUE(file.problems.empty());
  EXPECT_EQ(file.preamble, "# Six cases\n\nprose");
  ASSERT_EQ(file.cases.size(), static_cast<size_t>(kChildren));
  for (int i = 0; i < kChildren; ++i) EXPECT_EQ(file.cases[i].text, new_text(i)) << "case " << i;
  EXPECT_EQ(folder_entries(dir.path()), std::vector<std::string>{"six.md"});
}

TEST(RewriteCases, RefusesAFileWithAProblem) {
  TempDir dir;
  const std::string path = dir.file("dup.md");
  const std::string text = "# T\n\n## Same\n\nfirst\n\n## same\n\nsecond\n";
  write_file(path, text);
  try {
    rewrite_cases(path, {{"same", "## Same\n\nnew"}});
    FAIL() << "rewrite_cases rewrote a file with two cases of one name";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), path + ":7:")) << e.what();
    EXPECT_TRUE(contains(e.what(), "not rewritten")) << e.what();
  }
  EXPECT_EQ(read_file(path), text);
}

TEST(RewriteCases, RefusesWhenACaseIsGone) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  EXPECT_THROW(rewrite_cases(path, {{"case_9", "## Case 9\n\nnew"}}), std::runtime_error);
  EXPECT_EQ(read_file(path), kSixCases);
}

TEST(RewriteCases, MissingFileThrows) {
  TempDir dir;
  EXPECT_THROW(rewrite_cases(dir.file("gone.md"), {{"a", "## A"}}), std::runtime_error);
}

TEST(RewriteCases, ACaseEditedWhileItRanIsKeptAndReported) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  // The run read "old 1" and "old 2"; meanwhile someone edited case 1's prose.
  const std::string edited = std::string(kSixCases).replace(std::string(kSixCases).find("old 1"), 5,
                                                            "edited by hand");
  write_file(path, edited);
  const RewriteOutcome outcome =
      rewrite_cases(path, {{"case_1", CaseRewrite("## Case 1\n\nold 1", "## Case 1\n\nrendered")},
                           {"case_2", CaseRewrite("## Case 2\n\nold 2", "## Case 2\n\nrendered")}});
  EXPECT_TRUE(outcome.written);
  EXPECT_EQ(outcome.skipped, std::vector<std::string>{"case_1"});
  const std::string text = read_file(path);
  EXPECT_TRUE(contains(text, "## Case 1\n\nedited by hand\n")) << text;
  EXPECT_TRUE(contains(text, "## Case 2\n\nrendered\n")) << text;
}

TEST(RewriteCases, OnlyEditedCasesWriteNothing) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  const RewriteOutcome outcome =
      rewrite_cases(path, {{"case_3", CaseRewrite("## Case 3\n\nan older text", "## Case 3\n\nnew")}});
  EXPECT_FALSE(outcome.written);
  EXPECT_EQ(outcome.skipped, std::vector<std::string>{"case_3"});
  EXPECT_EQ(read_file(path), kSixCases);
}

TEST(RewriteCases, ACaseGoneSinceItRanIsNamed) {
  TempDir dir;
  const std::string path = dir.file("six.md");
  write_file(path, kSixCases);
  try {
    rewrite_cases(path, {{"case_9", CaseRewrite("## Case 9", "## Case 9\n\nnew")}});
    FAIL() << "a rewrite of a missing case was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), path + ":1: case 'case_9' is gone from the file since it ran"))
        << e.what();
  }
  EXPECT_EQ(read_file(path), kSixCases);
}

TEST(WriteFileAtomically, RemovesTemporaryFilesAnEarlierWriterLeft) {
  TempDir dir;
  const std::string path = dir.file("golden.md");
  write_file(path, "old\n");
  // What a kill between mkstemps and rename leaves, and names that only look alike.
  write_file(dir.file("golden.md.a1B2c3.tmp"), "partial");
  write_file(dir.file("golden.md.zzzzzz.tmp"), "partial");
  write_file(dir.file("golden.md.toolong1.tmp"), "keep");
  write_file(dir.file("other.md.a1B2c3.tmp"), "keep");
  EXPECT_EQ(leftover_temp_files(path).size(), 2u);
  write_file_atomically(path, "new\n");
  EXPECT_EQ(read_file(path), "new\n");
  EXPECT_EQ(folder_entries(dir.path()),
            (std::vector<std::string>{"golden.md", "golden.md.toolong1.tmp", "other.md.a1B2c3.tmp"}));
}

TEST(WriteFileAtomically, WritesThroughASymbolicLink) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("real"));
  const std::string target = dir.file("real/golden.md");
  const std::string link = dir.file("golden.md");
  write_file(target, "old\n");
  std::filesystem::create_symlink("real/golden.md", link);
  write_file_atomically(link, "new\n");
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(read_file(target), "new\n");
  EXPECT_EQ(folder_entries(dir.file("real")), std::vector<std::string>{"golden.md"});
}

TEST(RewriteCases, RegeneratesASymlinkedGoldenThroughTheLink) {
  TempDir dir;
  const std::string target = dir.file("six.md");
  const std::string link = dir.file("link.md");
  write_file(target, kSixCases);
  std::filesystem::create_symlink("six.md", link);
  EXPECT_TRUE(rewrite_cases(link, {{"case_0", CaseRewrite("## Case 0\n\nold 0", "## Case 0\n\nnew")}})
                  .written);
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_TRUE(contains(read_file(target), "## Case 0\n\nnew\n"));
}

TEST(WriteFileAtomically, RefusesAHardLinkedFile) {
  // A rename would leave the other name with the old text; writing in place could leave a
  // torn file on a kill. Refusing keeps both names identical and every golden whole.
  TempDir dir;
  const std::string path = dir.file("golden.md");
  write_file(path, "old\n");
  std::filesystem::create_hard_link(path, dir.file("other.md"));
  try {
    write_file_atomically(path, "new\n");
    FAIL() << "a hard-linked file was replaced";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "cannot replace " + path + ": it has 2 hard links")) << e.what();
  }
  EXPECT_EQ(read_file(path), "old\n");
  EXPECT_EQ(read_file(dir.file("other.md")), "old\n");
}

TEST(WriteFileAtomically, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  std::filesystem::create_directory(dir.file("folder.md"));
  try {
    write_file_atomically(dir.file("folder.md"), "new\n");
    FAIL() << "a folder was replaced";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "folder.md: it is not a regular file")) << e.what();
  }
}

}  // namespace
}  // namespace pinmark
