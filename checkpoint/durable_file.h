// Whole-file reads and crash-safe writes (temp file, fsync, rename) shared by the checkpoint formats.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dpt::checkpoint {

// The whole file; a dpt::Error naming `path` when it cannot be read.
std::string read_file(const std::string& path);

// Replaces `path` with `bytes` so that a reader (or a crash) sees the old file or the new one, never a
// partial one; the data and the rename are on disk when this returns. Errors name the path.
void write_file_atomic(const std::string& path, const std::string& bytes);
// The same for a file given as pieces in order (written without joining them first).
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& pieces);

// Makes earlier creates, renames and removals inside `dir` survive a crash.
void fsync_directory(const std::string& dir);

}  // namespace dpt::checkpoint
