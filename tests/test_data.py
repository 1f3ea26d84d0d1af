import os
import re
import time

import numpy as np
import pytest
import torch

from argminn_plugin import ArgminnError
from argminn_plugin.data import (check_labels, check_X, decode, load_intervals, one_hot, one_hot_many, read_bed,
                                 reverse_complement)


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture
def genome(tmp_path):
    seq1 = "ACGT" * 10 + "acgtNNNNacgt" + "T" * 8  # 60 bp, soft-masked and N stretch
    seq2 = "GGGGCCCCAAAATTTT" * 2  # 32 bp
    return write(tmp_path / "g.fa", f">chrA\n{seq1[:30]}\n{seq1[30:]}\n>chrB\n{seq2}\n"), seq1, seq2


def test_one_hot_known_answer():
    X = one_hot("ACgtN")
    expected = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]],
                            dtype=torch.float32)
    assert X.dtype == torch.float32 and torch.equal(X, expected)
    assert decode(X) == "ACGTN"
    assert decode(reverse_complement(X[None]))[0] == "NACGT"


def test_one_hot_rejects_iupac_with_position():
    with pytest.raises(ArgminnError, match=r"seq7: position 3: character 'R'"):
        one_hot("ACRT", "seq7")


def test_one_hot_many_length_mismatch():
    with pytest.raises(ArgminnError, match="s2: length 3 but the model expects 4"):
        one_hot_many(["ACGT", "ACG"], names=["s1", "s2"])
    with pytest.raises(ArgminnError, match="empty"):
        one_hot_many([])


def test_check_X_shapes_and_dtypes():
    assert check_X(np.zeros((2, 4, 10), dtype=np.int8)).dtype == torch.float32
    with pytest.raises(ArgminnError, match=r"shape \(2, 10, 4\); expected \(N, 4, L\)"):
        check_X(np.zeros((2, 10, 4)))
    with pytest.raises(ArgminnError, match="sequences are 10 bp but the model expects 12"):
        check_X(np.zeros((2, 4, 10)), length=12)
    with pytest.raises(ArgminnError, match="empty input"):
        check_X(np.zeros((0, 4, 10)))
    with pytest.raises(ArgminnError, match="not numeric"):
        check_X(np.array([[["A"] * 3] * 4], dtype=object))
    with pytest.raises(ArgminnError, match="NaN"):
        check_X(torch.full((1, 4, 3), float("nan")))


def test_check_labels():
    assert check_labels([0, 1, 1]).shape == (3, 1)
    with pytest.raises(ArgminnError, match=r"row 2, column 1: value 0.5 is not 0 or 1"):
        check_labels([0, 0.5])
    with pytest.raises(ArgminnError, match="3 rows but there are 2 sequences"):
        check_labels([0, 1, 1], n=2)
    # a read-only array (a pandas column's values) is read without torch's not-writable warning; in a process of
    # its own, since torch gives that warning once per process
    import subprocess
    import sys
    code = ("import numpy as np\nfrom argminn_plugin.data import check_labels\na = np.array([0, 1, 1])\n"
            "a.flags.writeable = False\nassert check_labels(a).tolist() == [[0.0], [1.0], [1.0]]\n")
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1000:]


def test_load_intervals_centres_windows(genome, tmp_path):
    fasta, seq1, seq2 = genome
    bed = write(tmp_path / "r.bed", "chrA\t20\t30\tx\nchrB\t10\t12\n")
    X, y, table, names = load_intervals(fasta, bed, 8)
    assert y is None and names == [] and X.shape == (2, 4, 8)
    # mid = 25 -> [21, 29); mid = 11 -> [7, 15)
    assert decode(X) == [seq1[21:29].upper(), seq2[7:15]]
    bed2 = write(tmp_path / "n.bed", "chrA\t40\t52\n")
    X2 = load_intervals(fasta, bed2, 12)[0]
    assert decode(X2)[0] == "ACGTNNNNACGT" and X2[0, :, 4:8].sum() == 0


def test_labelled_bed(tmp_path, genome):
    fasta = genome[0]
    bed = write(tmp_path / "l.bed", "#chrom\tstart\tend\tgood\tbad\nchrA\t0\t10\t1\t0\nchrB\t0\t10\t0\t1\n")
    X, y, _, names = load_intervals(fasta, bed, 10, label_columns=True)
    assert names == ["good", "bad"] and y.tolist() == [[1, 0], [0, 1]]
    bad = write(tmp_path / "b.bed", "chrA\t0\t10\t1\nchrB\t0\t10\t2\n")
    with pytest.raises(ArgminnError, match=r"b.bed: line 2: label '2' is not 0 or 1"):
        load_intervals(fasta, bad, 10, label_columns=True)
    # a line without one task's label is an error, not a task dropped for every line
    ragged = write(tmp_path / "r.bed", "#chrom\tstart\tend\tgood\tbad\nchrA\t0\t10\t1\t0\nchrB\t0\t10\t0\n")
    with pytest.raises(ArgminnError, match=r"r.bed: line 3: 4 columns, but line 2 has 5; a labelled BED needs"):
        load_intervals(fasta, ragged, 10, label_columns=True)
    assert len(load_intervals(fasta, ragged, 10)[0]) == 2  # unlabelled: extra columns are free
    # task names are the header's: each its own, none of the intervals' own columns
    for names, what in (("a\ta", "'a' named twice"), ("end\tb", "'end' is not a task name"),
                        ("line\tb", "'line' is not a task name"), ("b\tsummit", "'summit' is not a task name"),
                        (" \tb", "' ' is not a task name"),
                        ("CTCF\tCTCF_logit", "'CTCF_logit' is also the name of predict's logit column of task 'CTCF'")):
        clash = write(tmp_path / "c.bed", f"track x\n#chrom\tstart\tend\t{names}\nchrA\t0\t10\t1\t0\n")
        with pytest.raises(ArgminnError, match=re.escape(f"c.bed: line 2 (the header): task column {what}")):
            load_intervals(fasta, clash, 10, label_columns=True)
        assert len(load_intervals(fasta, clash, 10)[0]) == 1  # unlabelled: the header names nothing


def test_bed_headers_that_do_not_fit_the_columns_and_byte_order_marks(tmp_path, genome):
    """A header naming more or fewer columns than the lines have, or split by spaces, is refused at its line
    rather than its names dropped; a UTF-8 byte-order mark (spreadsheet exports) is not part of the first field."""
    fasta = genome[0]
    for header, message in (("#chrom\tstart\tend\tCTCF", "4 tab-separated names, but the lines have 5 columns"),
                            ("#chrom\tstart\tend\ta\tb\tc", "6 tab-separated names, but the lines have 5"),
                            ("#chrom start end a b", "separate its names by tabs")):
        bed = write(tmp_path / "h.bed", f"{header}\nchrA\t0\t10\t1\t0\n")
        with pytest.raises(ArgminnError, match=re.escape(f"h.bed: line 1 (the header): {message}")):
            load_intervals(fasta, bed, 10, label_columns=True)
    bed = write(tmp_path / "c.bed", "# two tasks\nchrA\t0\t10\t1\t0\n")  # a comment, not a header: task0, task1
    assert load_intervals(fasta, bed, 10, label_columns=True)[3] == ["task0", "task1"]
    # a comment of several tab-separated fields is no header either; the header after it is, trailing tab and all
    bed = write(tmp_path / "c.bed", "#source\tENCODE\tv2\tlab\n#chrom\tstart\tend\tA\tB\t\nchrA\t0\t10\t1\t0\n")
    assert load_intervals(fasta, bed, 10, label_columns=True)[3] == ["A", "B"]
    bed = write(tmp_path / "s.bed", "chrA\t 0\t10 \t1\n")  # spaces around a coordinate, as int() reads them
    assert read_bed(bed)[0][["start", "end"]].values.tolist() == [[0, 10]]
    (tmp_path / "bom.bed").write_bytes("\ufeff#chrom\tstart\tend\tCTCF\nchrA\t0\t10\t1\n".encode())
    assert load_intervals(fasta, str(tmp_path / "bom.bed"), 10, label_columns=True)[3] == ["CTCF"]
    (tmp_path / "bom2.bed").write_bytes("\ufeffchrA\t0\t10\nchrB\t0\t10\n".encode())
    assert read_bed(str(tmp_path / "bom2.bed"))[0]["chrom"].tolist() == ["chrA", "chrB"]


@pytest.mark.parametrize("content, message", [
    ("chrA\t3_0\t40\n", "line 1: start/end must be integers, got '3_0', '40'"),
    ("chrA\t+3\t40\n", r"line 1: start/end must be integers, got '\+3', '40'"),
    (f"chrA\t0\t{2 ** 63}\n", f"line 1: end {2 ** 63} is beyond any chromosome"),
    ("chrA\t5\n", r"line 1: 2 column\(s\)"),
    ("chrA\t5\t3\n", "line 1: start 5 is not before end 3"),
    ("chrA\tfive\t9\n", "line 1: start/end must be integers"),
    ("chrom\tstart\tend\tlabel\nchrA\t1\t9\t1\n", "line 1: start/end must be integers, got 'start', 'end'; a "
                                                   "header line\\? start it with '#'"),
    ("chrA\t0\t10\nchrZ\t0\t10\n", "line 2: chromosome 'chrZ' is not in the FASTA"),
    ("chrB\t20\t32\n", r"line 1: the 20-bp window chrB:17-36 .* runs past the chromosome \(chrB is 32 bp; "
                       r"--skip-outside \(in Python, skip=True\) leaves such lines out\)"),
    ("# only a header\n", "no intervals"),
])
def test_bed_errors_name_file_and_line(tmp_path, genome, content, message):
    bed = write(tmp_path / "bad.bed", content)
    with pytest.raises(ArgminnError, match=message):
        load_intervals(genome[0], bed, 20 if "20-bp" in message else 10)


def test_missing_files(tmp_path, genome):
    with pytest.raises(ArgminnError, match="FASTA file not found"):
        load_intervals(str(tmp_path / "no.fa"), write(tmp_path / "r.bed", "chrA\t0\t5\n"), 5)
    with pytest.raises(ArgminnError, match="BED file not found"):
        read_bed(str(tmp_path / "no.bed"))


def test_iupac_in_fasta_window(tmp_path):
    fasta = write(tmp_path / "i.fa", ">c\nACGTRACGTA\n")
    bed = write(tmp_path / "r.bed", "c\t0\t10\n")
    with pytest.raises(ArgminnError, match=r"i.fa: c:5: character 'R'"):
        load_intervals(fasta, bed, 10)


def test_stale_index_is_rebuilt(tmp_path):
    path = tmp_path / "s.fa"
    path.write_text(">c\nAAAAAAAAAA\n")
    bed = write(tmp_path / "r.bed", "c\t0\t10\n")
    assert decode(load_intervals(str(path), bed, 10)[0])[0] == "A" * 10
    assert os.path.exists(str(path) + ".fai")
    time.sleep(0.01)
    path.write_text(">c\nCCCCCCCCCCGG\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert decode(load_intervals(str(path), bed, 10)[0])[0] == "C" * 10


def test_an_index_of_another_file_is_rebuilt_whatever_the_times_and_a_damaged_bgzip_is_one_line(tmp_path):
    """A FASTA that arrives older than the index beside it (gunzip, wget, cp -p, rsync -a keep a file's time) is
    read through its own index: the same records wrapped at another width, or other records; an index that fits
    is kept. A cut or damaged bgzipped FASTA is a one-line error."""
    import random

    rng = random.Random(0)
    seqs = {name: "".join(rng.choice("ACGT") for _ in range(n)) for name, n in (("chr1", 500), ("chr2", 333))}
    path = tmp_path / "g.fa"
    bed = write(tmp_path / "r.bed", "chr2\t200\t260\nchr1\t10\t70\n")

    def wrapped(width, records=seqs):
        return "".join(f">{n} some description\n" + "".join(s[i:i + width] + "\n" for i in range(0, len(s), width))
                       for n, s in records.items())

    path.write_text(wrapped(80))
    expected = [seqs["chr2"][200:260], seqs["chr1"][10:70]]
    assert decode(load_intervals(str(path), bed, 60)[0]) == expected
    built = os.path.getmtime(str(path) + ".fai")
    other = {"chr2": seqs["chr2"][:100], "chr1": seqs["chr1"]}  # other records, in another order
    for text, want in ((wrapped(60), expected), (wrapped(80).replace("\n", "\r\n"), expected),
                       (wrapped(80, other), [None, seqs["chr1"][10:70]])):
        path.write_text(text, newline="")
        os.utime(path, (built - 100, built - 100))  # older than the index
        if want[0] is None:  # chr2's window is past its end now: the new chr2 is read, not the old index's
            with pytest.raises(ArgminnError, match=re.escape("runs past the chromosome (chr2 is 100 bp")):
                load_intervals(str(path), bed, 60)
            want = want[1:]
            bed_used = write(tmp_path / "r1.bed", "chr1\t10\t70\n")
        else:
            bed_used = bed
        assert decode(load_intervals(str(path), bed_used, 60)[0]) == want
        built = os.path.getmtime(str(path) + ".fai")
    for text in (wrapped(80), wrapped(80).rstrip("\n"), wrapped(80).replace("\n", "\r\n").rstrip("\r\n")):
        path.write_text(text, newline="")  # (the last two end without a line break)
        assert decode(load_intervals(str(path), bed, 60)[0]) == expected
        built = os.path.getmtime(str(path) + ".fai")
        os.utime(str(path) + ".fai", (built + 50, built + 50))
        stamp = os.stat(str(path) + ".fai").st_mtime_ns
        assert decode(load_intervals(str(path), bed, 60)[0]) == expected  # an index that fits stays
        assert os.stat(str(path) + ".fai").st_mtime_ns == stamp
    from Bio import bgzf

    packed = tmp_path / "g.fa.gz"
    many = {**seqs, **{f"chr{i}": "".join(rng.choice("ACGT") for _ in range(3000)) for i in range(3, 40)}}
    with bgzf.BgzfWriter(str(packed), "wb") as handle:
        handle.write(wrapped(80, many).encode())
    assert decode(load_intervals(str(packed), bed, 60)[0]) == expected  # intact: read
    data = packed.read_bytes()
    middle = len(data) // 3  # inside the first block (64 kB of text, about 17 kB packed)
    (tmp_path / "cut.fa.gz").write_bytes(data[:middle])
    (tmp_path / "bad.fa.gz").write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    for name in ("cut.fa.gz", "bad.fa.gz"):
        with pytest.raises(ArgminnError, match=re.escape(f"{tmp_path / name}: cannot read as FASTA (")):
            load_intervals(str(tmp_path / name), bed, 60)


def test_narrowpeak_summits_centre_windows_as_tangermeme_does(tmp_path, genome):
    from tangermeme.io import extract_loci

    fasta, seq1, seq2 = genome
    rows = ["chrA\t10\t30\tp1\t0\t.\t1\t1\t1\t4", "chrA\t20\t41\tp2\t0\t.\t1\t1\t1\t15",
            "chrB\t4\t20\tp3\t0\t.\t1\t1\t1\t0"]
    peaks = write(tmp_path / "p.narrowPeak", "\n".join(rows) + "\n")
    X, _, table, _ = load_intervals(fasta, peaks, 8, summits=True)
    # summits at 14, 35 and 4: [10, 18), [31, 39), [0, 8)
    assert decode(X) == [seq1[10:18].upper(), seq1[31:39].upper(), seq2[0:8]]
    assert torch.equal(X, extract_loci(peaks, fasta, in_window=8, summits=True, verbose=False, ignore=["N"]).float())
    assert table["peak_start"].tolist() == [10, 20, 4] and table["peak_end"].tolist() == [30, 41, 20]
    # the narrowPeak -1 (no summit called) keeps the interval's centre
    nosummit = write(tmp_path / "n.narrowPeak", "chrA\t20\t30\t.\t0\t.\t1\t1\t1\t-1\n")
    assert decode(load_intervals(fasta, nosummit, 8, summits=True)[0]) == [seq1[21:29].upper()]
    for content, message in (("chrA\t10\t30\n", r"line 1: 3 column\(s\); summits are read from a narrowPeak"),
                             ("chrA\t10\t30\t.\t0\t.\t1\t1\t1\t4\nchrA\t10\t30\t.\n", r"line 2: 4 column\(s\); summits"),
                             ("chrA\t10\t30\t.\t0\t.\t1\t1\t1\tx\n", "line 1: summit \\(column 10\\) 'x' is not an"),
                             ("chrA\t10\t30\t.\t0\t.\t1\t1\t1\t20\n", "line 1: summit 20 \\(column 10\\) is not "
                                                                      "inside the 20-bp peak"),
                             ("chrA\t10\t30\t.\t0\t.\t1\t1\t1\t1_0\n", "line 1: summit \\(column 10\\) '1_0' is not"),
                             (f"chrA\t10\t30\t.\t0\t.\t1\t1\t1\t{10 ** 20}\n", f"line 1: summit {10 ** 20} \\(column 10\\) "
                                                                              "is not inside"),
                             ("chrA\t10\t30\t.\t0\t.\t1\t1\t1\t-2\n", "line 1: summit -2 \\(column 10\\) is not "
                                                                      "inside")):
        with pytest.raises(ArgminnError, match="bad.narrowPeak: " + message):
            load_intervals(fasta, write(tmp_path / "bad.narrowPeak", content), 8, summits=True)


def test_gzipped_bed_reads_as_the_plain_one(tmp_path, genome):
    import gzip

    text = "#chrom\tstart\tend\tgood\nchrA\t0\t10\t1\nchrB\t0\t10\t0\n"
    plain = write(tmp_path / "l.bed", text)
    packed = tmp_path / "l.bed.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    X, y, bed, names = load_intervals(genome[0], plain, 10, label_columns=True)
    X2, y2, bed2, names2 = load_intervals(genome[0], str(packed), 10, label_columns=True)
    assert torch.equal(X, X2) and torch.equal(y, y2) and names == names2 == ["good"] and bed.equals(bed2)


def test_a_beds_fourth_column_is_its_intervals_name(tmp_path):
    """BED's rule: a fourth column on every line is the name (kept as written), unless a header names it otherwise
    or the lines are labels (label_columns) or a narrowPeak read for its summits (its name stays col4)."""
    from argminn_plugin.data import read_bed

    rows = "chrA\t0\t10\t001\t5\nchrB\t0\t10\tpeak b\t7\n"
    for header, column in (("", "name"), ("#chrom\tstart\tend\n", "name"), ("#chrom\tstart\tend\tNAME\tx\n", "name"),
                           ("#chrom\tstart\tend\tscore\tx\n", "col4")):
        bed, _ = read_bed(write(tmp_path / "n.bed", header + rows))
        assert list(bed.columns[:5]) == ["chrom", "start", "end", column, "col5"], header
        assert bed[column].tolist() == ["001", "peak b"]
    assert "name" not in read_bed(write(tmp_path / "r.bed", "chrA\t0\t10\t001\nchrB\t0\t10\n"))[0].columns
    assert "name" not in read_bed(write(tmp_path / "l.bed", "chrA\t0\t10\t1\n"), label_columns=True)[0].columns


def test_peaks_and_negatives_make_one_labelled_task(tmp_path, genome):
    from argminn_plugin.data import load_peaks

    fasta, seq1, seq2 = genome
    peaks = write(tmp_path / "CTCF.narrowPeak", "chrA\t10\t30\t.\t0\t.\t1\t1\t1\t4\nchrB\t4\t20\t.\t0\t.\t1\t1\t1\t0\n")
    negatives = write(tmp_path / "neg.bed", "chrA\t40\t50\nchrB\t20\t30\nchrA\t0\t8\n")
    splits, names = load_peaks(fasta, peaks, negatives, 8, ["chrB"], [], summits=True)
    assert names == ["CTCF"]
    X, y, bed = splits["train"]  # chrA: the first peak, then the first and third negatives
    assert decode(X) == [seq1[10:18].upper(), seq1[41:49].upper(), seq1[0:8].upper()]
    assert y[:, 0].tolist() == [1, 0, 0] and bed["source"].tolist() == [peaks, negatives, negatives]
    assert bed["summit"].tolist()[0] == 4 and bed["summit"].isna().tolist() == [False, True, True]
    Xv, yv, _ = splits["valid"]
    assert decode(Xv) == [seq2[0:8], seq2[21:29]] and yv[:, 0].tolist() == [1, 0]
    assert len(splits["test"][0]) == 0
    for taken in ("name", "chrom", "source", " ", "peak_start", "col4"):  # the intervals' own columns, here or
        # in predict's output
        with pytest.raises(ArgminnError, match=re.escape(f"task name {taken!r} (--task-name) is taken")):
            load_peaks(fasta, peaks, negatives, 8, ["chrB"], [], summits=True, task_name=taken)
    # a negative on a peak's window (here the first peak's summit window, BED chrA 10 18) would be labelled 1 and 0
    shared = write(tmp_path / "shared.bed", "chrA\t40\t50\nchrB\t20\t30\nchrA\t10\t18\n")
    with pytest.raises(ArgminnError, match=re.escape(f"{shared}: line 3: its 8-bp window chrA:11-18 is also the "
                                                     f"window of {peaks} line 1, so one sequence would be labelled "
                                                     "both 1 and 0")):
        load_peaks(fasta, peaks, shared, 8, ["chrB"], [], summits=True)
    # each file's errors name that file and its line
    bad_negatives = write(tmp_path / "badneg.bed", "chrA\t40\t50\nchrQ\t0\t10\n")
    with pytest.raises(ArgminnError, match="badneg.bed: line 2: chromosome 'chrQ' is not in the FASTA"):
        load_peaks(fasta, peaks, bad_negatives, 8, ["chrB"], [], summits=True)
    with pytest.raises(ArgminnError, match=r"no intervals on the validation chromosome\(s\) 'chrZ' \(the data's: "
                                           r"chrA, chrB; give several names separated by spaces\)"):
        load_peaks(fasta, peaks, negatives, 8, ["chrZ"], [], summits=True)
    # a test chromosome that matches nothing would leave the one meant in training
    with pytest.raises(ArgminnError, match=r"no intervals on the test chromosome\(s\) 'chr1,chrA'"):
        load_peaks(fasta, peaks, negatives, 8, ["chrB"], ["chr1,chrA"], summits=True)
    with pytest.raises(ArgminnError, match="no intervals in the valid split"):
        load_peaks(fasta, peaks, negatives, 8, [], [], summits=True)
    # a split of one class: nothing to learn from, or nothing to stop on
    chrA_only = write(tmp_path / "negA.bed", "chrA\t40\t50\n")
    with pytest.raises(ArgminnError, match=r"negA.bed: no negatives on the valid split's chromosomes \(chrB\)"):
        load_peaks(fasta, peaks, chrA_only, 8, ["chrB"], [], summits=True)
    peaks_b = write(tmp_path / "B.bed", "chrB\t4\t20\n")
    with pytest.raises(ArgminnError, match=r"B.bed: no peaks on the train split's chromosomes \(chrA\)"):
        load_peaks(fasta, peaks_b, negatives, 8, ["chrB"], [])
    # design reads one split (needed): one class there is its own matter, and only the names that shape that
    # split are checked (the training split is what neither list names: both, for it)
    assert len(load_peaks(fasta, peaks, chrA_only, 8, ["chrB"], [], needed=("valid",))[0]["valid"][0]) == 1
    assert len(load_peaks(fasta, peaks_b, negatives, 8, ["chrB"], ["chrQ"], needed=("valid",))[0]["valid"][0]) == 2
    for needed in (("train",), ("test",)):
        with pytest.raises(ArgminnError, match=r"no intervals on the test chromosome\(s\) 'chrQ'"):
            load_peaks(fasta, peaks, negatives, 8, ["chrB"], ["chrQ"], needed=needed)
    with pytest.raises(ArgminnError, match=r"no intervals on the validation chromosome\(s\) 'chrZ'"):
        load_peaks(fasta, peaks, negatives, 8, ["chrZ"], [], needed=("train",))
    # a peaks file named like a BED column keeps the column: the task is renamed
    start = write(tmp_path / "start.bed", "chrA\t10\t30\nchrB\t4\t20\n")
    assert load_peaks(fasta, start, negatives, 8, ["chrB"], [])[1] == ["start_peak"]
    encode = write(tmp_path / "K562.CTCF.narrowPeak", "chrA\t10\t30\nchrB\t4\t20\n")
    assert load_peaks(fasta, encode, negatives, 8, ["chrB"], [])[1] == ["K562.CTCF"]


def test_intervals_outside_the_genome_are_refused_or_skipped(tmp_path, genome, capsys):
    """An interval whose window runs past a chromosome end, or lies on a chromosome the FASTA lacks, is an
    error naming its line; with skip it is left out (as tangermeme and bpnet-lite do), counted on stderr."""
    from argminn_plugin.data import load_peaks

    fasta, seq1, seq2 = genome
    bed = write(tmp_path / "r.bed", "chrA\t20\t30\nchrB\t28\t32\nchrEBV\t0\t10\nchrB\t10\t12\n")
    with pytest.raises(ArgminnError, match="r.bed: line 2: the 8-bp window chrB:27-34 .* runs past"):
        load_intervals(fasta, bed, 8)
    X, _, table, _ = load_intervals(fasta, bed, 8, skip=True)
    assert decode(X) == [seq1[21:29].upper(), seq2[7:15]] and table["line"].tolist() == [1, 4]
    assert "r.bed: left out 2 of 4 interval(s) whose 8-bp window is not inside a chromosome of the FASTA " \
           "(the first: line 2)" in capsys.readouterr().err
    with pytest.raises(ArgminnError, match="no interval's 8-bp window lies inside"):
        load_intervals(fasta, write(tmp_path / "off.bed", "chrEBV\t0\t10\n"), 8, skip=True)
    peaks = write(tmp_path / "p.bed", "chrA\t20\t30\nchrB\t10\t12\nchrB\t30\t32\n")
    negatives = write(tmp_path / "n.bed", "chrA\t40\t50\nchrB\t14\t18\nchrQ\t1\t2\n")
    splits, _ = load_peaks(fasta, peaks, negatives, 8, ["chrB"], [], skip=True)
    assert [len(splits[k][0]) for k in ("train", "valid")] == [2, 2]
    err = capsys.readouterr().err
    assert "p.bed: left out 1 of 3" in err and "n.bed: left out 1 of 3" in err
