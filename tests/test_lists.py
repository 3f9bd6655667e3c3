"""core.video.lists, the one parser of list files and Kinetics CSVs: paths with spaces, optional labels, empty files
named as empty; training, extract_features and prepare read the same names from the same file."""
from __future__ import annotations

import pytest

from cli import prepare as prepare_cmd
from core.engine.data import DataError
from core.video import features
from core.video.data import build_video_dataset
from core.video.lists import (
    ListFileError,
    annotation_paths,
    parse_kinetics_csv,
    parse_list_file,
    read_kinetics_csv,
    read_list_file,
)

KINETICS = "train/air drumming/clip 00.mp4 0\n# a comment\n\ntrain/playing bass/a  b.mp4\t1\n"
NAMES = ["train/air drumming/clip 00.mp4", "train/playing bass/a  b.mp4"]


def test_the_label_is_the_last_token_and_the_path_keeps_its_spaces(tmp_path):
    lst = tmp_path / "train list.txt"
    lst.write_text(KINETICS + "no label here.mp4\n")
    entries = read_list_file(lst, labels=False)
    assert [(e.path, e.label, e.line) for e in entries] == [(NAMES[0], 0, 1), (NAMES[1], 1, 4),
                                                            ("no label here.mp4", None, 5)]
    assert entries[1].text == "train/playing bass/a  b.mp4\t1"  # the line as written, for lists written back
    with pytest.raises(ListFileError, match=r"train list.txt:5: expected '<path> <label index>', got 'no label"):
        read_list_file(lst)  # training needs every label
    assert isinstance(ListFileError("x"), ValueError)  # what the data-set builders already turn into data errors


def test_every_reader_reads_the_same_names(tmp_path):
    lst = tmp_path / "train list.txt"
    lst.write_text(KINETICS)
    assert parse_list_file(lst, "/k400") == [(f"/k400/{NAMES[0]}", 0), (f"/k400/{NAMES[1]}", 1)]  # training, test
    assert features._list_entries(str(lst)) == NAMES                                                    # extract_features
    assert prepare_cmd.read_lists([str(lst)], str(tmp_path))[1] == NAMES                            # prepare
    assert annotation_paths(lst, tmp_path) == NAMES
    job = features.plan(str(tmp_path / "f"), str(lst), root="/k400")
    assert [v for v, _ in job.problems] == [f"/k400/{n}" for n in NAMES]  # the whole name, reported missing


def test_an_empty_list_or_csv_is_an_error_that_says_empty(tmp_path):
    lst = tmp_path / "val list.txt"
    for text in ("", "# only comments\n\n   \n"):
        lst.write_text(text)
        for read in (read_list_file, lambda f: read_list_file(f, labels=False), parse_list_file):
            with pytest.raises(ListFileError, match=r"0 entries in .*val list.txt"):
                read(lst)
        with pytest.raises(ValueError, match=r"0 entries in .*val list.txt"):  # training and test
            build_video_dataset(tmp_path, lst, split="test")
        with pytest.raises(DataError, match=r"0 entries in .*val list.txt"):  # extract_features
            features.plan(str(tmp_path / "f"), str(lst))
    csv = tmp_path / "val.csv"
    for text in ("", "label,youtube_id,time_start,time_end,split\n"):
        csv.write_text(text)
        with pytest.raises(ListFileError, match=r"0 entries in .*val.csv"):
            parse_kinetics_csv(csv, tmp_path)


def test_kinetics_csv_rows_and_their_files(tmp_path):
    (tmp_path / "air drumming").mkdir()
    (tmp_path / "playing_bass").mkdir()
    csv = tmp_path / "val.csv"
    csv.write_text("\ufefflabel,youtube_id,time_start,time_end,split\nair drumming,ab-c,10.0,20,val\n"
                   "\"playing bass\",_x1,0,10,val\n")
    rows = read_kinetics_csv(csv)
    assert [(r.label, r.filename(), r.line) for r in rows] == [("air drumming", "ab-c_000010_000020.mp4", 2),
                                                               ("playing bass", "_x1_000000_000010.mp4", 3)]
    samples, classes = parse_kinetics_csv(csv, tmp_path)
    assert classes == ["air drumming", "playing bass"]
    assert samples == [(str(tmp_path / "air drumming/ab-c_000010_000020.mp4"), 0),
                       (str(tmp_path / "playing_bass/_x1_000000_000010.mp4"), 1)]  # either spelling of the folder
    assert annotation_paths(csv, tmp_path) == ["air drumming/ab-c_000010_000020.mp4",
                                               "playing_bass/_x1_000000_000010.mp4"]
    csv.write_text("label,youtube_id,time_start,time_end\nzumba,q,five,15\n")
    with pytest.raises(ListFileError, match=r"val.csv:2: time_start / time_end must be numbers"):
        read_kinetics_csv(csv)
    csv.write_text("label,id\nzumba,q\n")
    with pytest.raises(ListFileError, match=r"val.csv: expected columns label,youtube_id,time_start,time_end"):
        read_kinetics_csv(csv)
