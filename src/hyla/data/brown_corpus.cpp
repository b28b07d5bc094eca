// Brown Corpus form C to prose (declared in text_sources.h).
#include <string>
#include <string_view>
#include <vector>

#include "hyla/data/text_sources.h"

namespace hyla::data {
namespace {

// Word part of `word/tag`; the tag follows the last slash ("1/2/cd" is "1/2").
std::string_view strip_tag(std::string_view tok) {
  size_t slash = tok.rfind('/');
  return slash == std::string_view::npos || slash == 0 ? tok : tok.substr(0, slash);
}

bool attaches_left(std::string_view w) {  // no space before
  return w == "," || w == "." || w == ";" || w == ":" || w == "?" || w == "!" || w == ")" ||
         w == "]" || w == "''" || w == "'";
}

bool attaches_right(std::string_view w) {  // no space after
  return w == "(" || w == "[" || w == "``";
}

std::string sentence_to_prose(std::string_view line) {
  std::string out;
  bool glue_next = false;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j == i) break;
    std::string_view word = strip_tag(line.substr(i, j - i));
    i = j;
    if (word.empty()) continue;
    if (!out.empty() && !glue_next && !attaches_left(word)) out += ' ';
    out += (word == "``" || word == "''") ? std::string_view("\"") : word;
    glue_next = attaches_right(word);
  }
  return out;
}

}  // namespace

std::string brown_to_prose(std::string_view tagged) {
  std::string out, paragraph;
  auto end_paragraph = [&] {
    if (paragraph.empty()) return;
    if (!out.empty()) out += "\n\n";
    out += paragraph;
    paragraph.clear();
  };
  size_t start = 0;
  while (start <= tagged.size()) {
    size_t end = tagged.find('\n', start);
    if (end == std::string_view::npos) end = tagged.size();
    std::string sentence = sentence_to_prose(tagged.substr(start, end - start));
    if (sentence.empty()) {
      end_paragraph();
    } else {
      if (!paragraph.empty()) paragraph += ' ';
      paragraph += sentence;
    }
    start = end + 1;
  }
  end_paragraph();
  return out;
}

}  // namespace hyla::data
