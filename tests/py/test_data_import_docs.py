"""scripts/debian_docs_to_jsonl.py on tiny local fixtures (no download): markup
stripped, code and boilerplate dropped, output reproducible."""
import gzip
import json
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "debian_docs_to_jsonl.py"
PROSE = "This paragraph explains how the parser reads a configuration file in detail."

HTML = f"""<html><head><title>T</title><script>var x = 1;</script></head><body>
<div class="sphinxsidebar"><p>Navigation sidebar text with enough words here.</p></div>
<div class="body" role="main"><h1>Reading files<a class="headerlink" href="#x">¶</a></h1>
<p>{PROSE}</p>
<div class="highlight-python3"><pre>for line in open(path): print(line)</pre></div>
<p>It keeps <code>comments</code> and <em>blank</em> lines &amp; reports errors clearly.
<p>x = f(a[0], b[1]) {{ return y; }} /* code-like */ $z = @w;</p>
<table><tr><td>table cell words are not prose here</td></tr></table>
<p>Part of the Stable ABI and always repeated here.</p></div>
<div class="footer">Copyright footer text that should never appear.</div></body></html>"""

POD = """=head1 NAME

perlfixture - a manual page for the B<fixture> with I<style>

=head1 DESCRIPTION

This text uses C<print> and L<the perlfunc page|perlfunc> and E<lt>tagsE<gt> well.

    my $code = "verbatim paragraph";
    print $code;

=begin html

<p>Raw html that should be skipped entirely by the converter.</p>

=end html

A second ordinary paragraph with C<< $x->method >> and E<0x41> plus E<eacute>tude words.

=cut

sub not_pod { return "this is code after cut and it is long enough"; }
"""

GCIDE = """00-database-info
   This file was converted from the original database.

Affear \\Af*fear"\\, v. t. [OE. aferen, AS. afaeran. See
   {Afeard}.]
   To frighten or alarm greatly. [Obs.] --Spenser.
   [1913 Webster]

Affect \\Af*fect"\\, v. t.
   1. To act upon; to produce an effect or change upon.
      [1913 Webster]
"""


def convert(tmp_path, package, files, name="out.jsonl", extra=("--min-chars", "0")):
    root = tmp_path / f"root-{package}"
    for rel, data in files.items():
        f = root / "usr" / "share" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data if isinstance(data, bytes) else data.encode())
    out = tmp_path / name
    subprocess.run([sys.executable, SCRIPT, "--package", package, "--root", root, "--out", out,
                    *extra], check=True, capture_output=True)
    return [json.loads(line) for line in out.read_text().splitlines()], out


@pytest.mark.parametrize("n_pages", [1, 7])
def test_html_prose_without_code_navigation_or_boilerplate(tmp_path, n_pages):
    pages = {f"doc/p/html/page{i}.html": HTML.replace("configuration", f"configuration {i}")
             .replace("reports errors", f"reports {i} errors") for i in range(n_pages)}
    pages["doc/p/html/genindex.html"] = HTML
    pages["doc/p/html/_sources/page0.rst.txt"] = "not html"
    docs, _ = convert(tmp_path, "python3.11-doc", pages)
    assert [d["source"] for d in docs] == [f"python3.11-doc/doc/p/html/page{i}.html"
                                          for i in range(n_pages)]  # sorted, index skipped
    pars = docs[0]["text"].split("\n\n")
    assert pars[0] == PROSE.replace("configuration", "configuration 0")
    assert pars[1] == "It keeps comments and blank lines & reports 0 errors clearly."
    text = docs[0]["text"]
    for gone in ("sidebar", "print(line)", "var x", "return y", "table cell", "footer", "¶"):
        assert gone not in text
    # A paragraph found in more than 5 pages is boilerplate.
    assert ("Stable ABI" in text) == (n_pages <= 5)


def test_pod_formatting_codes_and_verbatim(tmp_path):
    docs, _ = convert(tmp_path, "perl-doc", {"perl/pod/perlfixture.pod": POD,
                                             "perl/pod/zz.pod.gz": gzip.compress(POD.encode())})
    assert len(docs) == 2 and docs[0]["text"] == docs[1]["text"]
    assert docs[0]["text"].split("\n\n") == [
        "perlfixture - a manual page for the fixture with style",
        "This text uses print and the perlfunc page and <tags> well.",
        "A second ordinary paragraph with $x->method and A plus étude words."]


def test_gcide_entries_and_reproducibility(tmp_path):
    files = {"dictd/gcide.dict.dz": gzip.compress(GCIDE.encode(), mtime=0)}
    docs, out1 = convert(tmp_path, "dict-gcide", files, "a.jsonl")
    _, out2 = convert(tmp_path, "dict-gcide", files, "b.jsonl")
    assert out1.read_bytes() == out2.read_bytes()
    assert [d["text"] for d in docs] == [
        "Affear, v. t. To frighten or alarm greatly.\n"
        "Affect, v. t. 1. To act upon; to produce an effect or change upon."]
