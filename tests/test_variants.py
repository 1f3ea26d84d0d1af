import re

import numpy as np
import pytest
import torch

from argminn_plugin import ARGMINN, ArgminnError, ModelConfig
from argminn_plugin.data import one_hot
from argminn_plugin.variants import read_variants, score_variants, variant_table, variant_windows

GENOME = "ACGTACGTAC" * 6  # 60 bp


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\n" + GENOME + "\n")
    return str(path)


def vcf(tmp_path, *records, name="v.vcf"):
    path = tmp_path / name
    path.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" +
                    "".join("\t".join(map(str, r)) + "\n" for r in records))
    return str(path)


def test_read_vcf_and_table(tmp_path):
    v = read_variants(vcf(tmp_path, ("chr1", 30, "rs1", "C", "T", ".", ".", "."), ("chr1", 31, ".", "g", "a", ".",
                                                                                     ".", ".")))
    assert v[["chrom", "pos", "ref", "alt", "id"]].values.tolist() == [["chr1", 30, "C", "T", "rs1"],
                                                                       ["chr1", 31, "G", "A", "chr1:31G>A"]]
    table = tmp_path / "v.tsv"
    table.write_text("chrom\tpos\tref\talt\nchr1\t30\tC\tT\n")
    assert read_variants(str(table)).pos.tolist() == [30]
    # an id column last, blank on a line whose trailing tab was stripped: that variant named by its position
    table.write_text("chrom\tpos\tref\talt\tid\nchr1\t30\tC\tT\trs1\nchr1\t31\tG\tA\n")
    assert read_variants(str(table)).id.tolist() == ["rs1", "chr1:31G>A"]
    table.write_bytes("\ufeffchrom\tpos\tref\talt\nchr1\t30\tC\tT\n".encode())  # a byte-order mark
    assert read_variants(str(table)).pos.tolist() == [30]
    table.write_text("chr1\t30\tC\tT\n")
    with pytest.raises(ArgminnError, match="line 1: no header line"):
        read_variants(str(table))
    table.write_text("#chrom\tposition\tref\talt\n")
    with pytest.raises(ArgminnError, match="header must name"):
        read_variants(str(table))
    for text in ("", "\n\n", "##fileformat=VCFv4.2\n"):  # said empty, not "the header must name ..."
        table.write_text(text)
        with pytest.raises(ArgminnError, match=re.escape(f"{table}: no variants (the file is empty, or holds only")):
            read_variants(str(table))
    # gzipped (bgzip's output is gzip too): read whatever the name, as a BED is
    import gzip

    plain = vcf(tmp_path, ("chr1", 30, "rs1", "C", "T", ".", ".", "."))
    for name in ("v.vcf.gz", "zipped.vcf"):
        (tmp_path / name).write_bytes(gzip.compress(open(plain, "rb").read()))
        assert read_variants(str(tmp_path / name)).equals(read_variants(plain))
    broken = bytearray(gzip.compress(open(plain, "rb").read() * 50))
    broken[30:60] = bytes(b ^ 0xFF for b in broken[30:60])  # corrupted inside, not cut off
    (tmp_path / "broken.vcf.gz").write_bytes(bytes(broken))
    with pytest.raises(ArgminnError, match=r"broken.vcf.gz: cannot read \("):
        read_variants(str(tmp_path / "broken.vcf.gz"))


@pytest.mark.parametrize("record, message", [
    (("chr1", "x", ".", "C", "T"), "line 3: position 'x' is not an integer"),
    (("chr1", 30, ".", "CA", "T"), "line 3: CA>T is not a single-nucleotide variant"),
    (("chr1", 30, ".", "C", "C"), "line 3: ALT equals REF"),
    (("chr1", 0, ".", "C", "T"), "not 1-based"),
    (("chr1", "3_0", ".", "C", "T"), "line 3: position '3_0' is not an integer"),
    (("chr1", 2 ** 63, ".", "C", "T"), f"line 3: position {2 ** 63} is beyond any chromosome"),
])
def test_bad_records(tmp_path, record, message):
    with pytest.raises(ArgminnError, match=message):
        read_variants(vcf(tmp_path, record + (".", ".", ".")))


def test_ref_mismatch_names_line(tmp_path, fasta):
    variants = read_variants(vcf(tmp_path, ("chr1", 30, ".", "C", "T", ".", ".", "."),
                                 ("chr1", 31, ".", "G", "T", ".", ".", ".")))
    with pytest.raises(ArgminnError, match=r"line 4: REF G does not match the genome at chr1:31 \(A\)"):
        variant_windows(variants, fasta, 20, "v.vcf")


def test_iupac_letter_in_a_variants_window(tmp_path):
    path = tmp_path / "iupac.fa"
    path.write_text(">chr1\n" + GENOME[:35] + "R" + GENOME[36:] + "\n")
    variants = read_variants(vcf(tmp_path, ("chr1", 30, ".", "C", "T", ".", ".", ".")))
    with pytest.raises(ArgminnError, match=r"iupac.fa: chr1:36: character 'R' is not A, C, G, T or N "
                                           r"\(window of v.vcf line 3;"):
        variant_windows(variants, str(path), 20, "v.vcf")


def test_variant_past_chromosome_end(tmp_path, fasta):
    variants = read_variants(vcf(tmp_path, ("chr1", 58, ".", "C", "T", ".", ".", ".")))
    with pytest.raises(ArgminnError, match="runs past the chromosome"):
        variant_windows(variants, fasta, 20, "v.vcf")


def test_windows_centre_the_variant(tmp_path, fasta):
    variants = read_variants(vcf(tmp_path, ("chr1", 30, ".", "C", "T", ".", ".", ".")))
    X, subs, starts = variant_windows(variants, fasta, 20)
    assert starts.tolist() == [19] and subs.tolist() == [[0, 10, 3]]
    assert torch.equal(X[0], one_hot(GENOME[19:39]))
    assert X[0, :, 10].argmax() == 1  # C at the centre


def test_score_variants_known_answer(tmp_path, fasta):
    """A model whose single filter reads the centre base: the diff equals the weight change."""
    model = ARGMINN(ModelConfig(input_length=20, n_filters=1, filter_width=1, n_layers=1))
    variants = read_variants(vcf(tmp_path, ("chr1", 30, ".", "C", "T", ".", ".", ".")))
    out = score_variants(model, variants, fasta)
    assert model.training  # scored in eval mode, and left in the caller's mode
    model.eval()
    wide = score_variants(model.double(), variants, fasta)  # float64 (as for DeepLIFT): the same windows
    model.float()
    assert np.allclose(wide["task0_diff"], out["task0_diff"], atol=1e-6)
    X, subs, _ = variant_windows(variants, fasta, 20)
    alt = X.clone()
    alt[0, :, 10] = torch.tensor([0.0, 0, 0, 1])
    with torch.no_grad():
        assert out["task0_ref"][0] == pytest.approx(model(X)[0, 0].item(), abs=1e-6)
        assert out["task0_diff"][0] == pytest.approx((model(alt) - model(X))[0, 0].item(), abs=1e-6)


def test_score_variants_takes_a_plain_table_checked_row_by_row(tmp_path, fasta):
    import pandas as pd

    model = ARGMINN(ModelConfig(input_length=20, n_filters=1, filter_width=1, n_layers=1))
    from_file = score_variants(model, read_variants(vcf(tmp_path, ("chr1", 30, ".", "C", "T", ".", ".", "."))), fasta)
    plain = pd.DataFrame({"chrom": ["chr1"], "pos": [30], "ref": ["c"], "alt": ["T"], "note": ["mine"]})
    out = score_variants(model, plain, fasta)
    assert out["id"].tolist() == ["chr1:30C>T"] and out["note"].tolist() == ["mine"]
    assert out["task0_diff"].tolist() == from_file["task0_diff"].tolist()
    assert score_variants(model, plain.set_axis([7]), fasta).index.tolist() == [7]  # the caller's rows kept
    two = pd.DataFrame({"chrom": ["chr1", "chr1"], "pos": [30, None], "ref": ["C", "A"], "alt": ["T", "C"]})
    with pytest.raises(ArgminnError, match="row 2: no position"):
        variant_table(two)
    assert variant_table(two.iloc[:1])["pos"].tolist() == [30]  # whole numbers in a float column
    for table, message in ((plain.drop(columns=["alt"]), "no alt column(s); a variant table needs chrom, pos"),
                           (plain.assign(pos=[30.5]), "row 1: position 30.5 is not an integer"),
                           (plain.assign(ref=["CA"]), "row 1: CA>T is not a single-nucleotide variant"),
                           (plain.iloc[:0], "no variants")):
        with pytest.raises(ArgminnError, match=re.escape(message)):
            score_variants(model, table, fasta)
    with pytest.raises(ArgminnError, match="expected a DataFrame of variants"):
        variant_table([("chr1", 30, "C", "T")])
    # 'line' is the table's own column (the input's line numbers): a caller's own 'line' is refused, not misread
    for cells in (["K562"], [0], [2.5], [True]):
        with pytest.raises(ArgminnError, match=r"row 1: column 'line' holds .*rename that column"):
            score_variants(model, plain.assign(line=cells), fasta)
    assert variant_table(plain.assign(line=[np.int64(7)]))["line"].tolist() == [7]


def test_score_variants_takes_tangermemes_read_vcf_table(tmp_path, fasta):
    """tangermeme.io.read_vcf names its columns CHROM, POS, ID, REF, ALT (and reads VCFs with a FORMAT column):
    the same scores as read_variants' table, the fields named in lower case, the other columns kept."""
    from tangermeme.io import read_vcf

    model = ARGMINN(ModelConfig(input_length=20, n_filters=1, filter_width=1, n_layers=1))
    path = tmp_path / "g.vcf"
    path.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
                    "chr1\t30\trs1\tC\tT\t.\t.\t.\tGT\t0/1\nchr1\t31\t.\tA\tG\t.\t.\t.\tGT\t1/1\n")
    theirs = read_vcf(str(path))
    assert list(theirs.columns[:5]) == ["CHROM", "POS", "ID", "REF", "ALT"]
    ours = read_variants(str(path))
    out = score_variants(model, theirs, fasta)
    assert out["id"].tolist() == ["rs1", "chr1:31A>G"] and out["FORMAT"].tolist() == ["GT", "GT"]
    assert out["task0_diff"].tolist() == score_variants(model, ours, fasta)["task0_diff"].tolist()
    assert list(variant_table(theirs).columns[:6]) == ["chrom", "pos", "ref", "alt", "id", "line"]
    numbered = theirs.copy()
    numbered[7] = "x"  # a column named by a number: kept, not read as a field name
    assert variant_table(numbered)[7].tolist() == ["x", "x"]
    # one field named twice, in two cases: refused, not one of them picked
    with pytest.raises(ArgminnError, match=r"columns 'pos', 'POS' both name the variants' pos; keep one"):
        variant_table(theirs.assign(pos=[1, 2])[["pos", *theirs.columns]])
    # a multi-allelic ALT in a table (read_vcf keeps the record whole): named, with the reader that splits it
    with pytest.raises(ArgminnError, match=r"row 1: ALT T,G holds several alleles; .*read_variants gives one per"):
        score_variants(model, theirs.assign(ALT=["T,G", "A"]), fasta)


def test_an_offset_outside_the_window_is_named_before_windows_are_skipped(tmp_path, fasta):
    from argminn_plugin.variants import check_variants, variants_inside

    v = read_variants(vcf(tmp_path, ("chr1", 30, "rs1", "C", "T", ".", ".", ".")))
    for check in (variants_inside, check_variants):
        with pytest.raises(ArgminnError, match=re.escape("offset (--offset, offset=) 5000 is outside the 20-bp "
                                                         "window: give 0 to 19")):
            check(v, fasta, 20, offset=5000)
    assert len(variants_inside(v, fasta, 20, offset=3)) == 1


def test_variants_inside_and_check_variants_take_a_plain_table_and_keep_rows_by_position(tmp_path, fasta, capsys):
    import pandas as pd

    from argminn_plugin.variants import check_variants, variants_inside

    plain = pd.DataFrame({"chrom": ["chr1", "chr1"], "pos": [30, 3], "ref": ["C", "G"], "alt": ["T", "A"]})
    kept = variants_inside(plain, fasta, 20)
    assert kept["pos"].tolist() == [30] and list(kept.columns) == list(plain.columns)  # the caller's rows
    assert "left out 1 of 2 variant(s)" in capsys.readouterr().err
    check_variants(kept, fasta, 20)
    with pytest.raises(ArgminnError, match=re.escape("line 2: the 20-bp window chr1:-7-12 of this line runs past")
                       + r".*--skip-outside \(in Python, variants_inside\(variants, fasta, 20\) first\) "
                         "leaves such lines out"):
        check_variants(plain, fasta, 20)
    # at another offset the advice names it: the default offset would keep the variant at 12
    near = plain.assign(pos=[30, 12])
    with pytest.raises(ArgminnError, match=re.escape("line 2: the 20-bp window chr1:-3-16 ") + ".*" + re.escape(
            "(in Python, variants_inside(variants, fasta, 20, offset=15) first) leaves such lines out")):
        check_variants(near, fasta, 20, offset=15)
    assert len(variants_inside(near, fasta, 20)) == 2
    kept = variants_inside(near, fasta, 20, offset=15)
    assert kept["pos"].tolist() == [30]
    check_variants(kept, fasta, 20, offset=15)
    # two files' tables joined, each variant on line 3 of its file: the one outside is left out, not both kept
    outside = read_variants(vcf(tmp_path, ("chr1", 3, "b", "G", "A", ".", ".", "."), name="b.vcf"))
    inside = read_variants(vcf(tmp_path, ("chr1", 30, "a", "C", "T", ".", ".", "."), name="a.vcf"))
    joined = pd.concat([outside, inside], ignore_index=True)
    assert joined["line"].tolist() == [3, 3]
    assert variants_inside(joined, fasta, 20)["id"].tolist() == ["a"]
