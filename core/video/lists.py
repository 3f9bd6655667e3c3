"""List files and official Kinetics CSVs: the one parser of every reader (training, test, extract_features, prepare).

A list file (mmaction2's format) holds one video a line, ``<path> <label>``: the label is the last
whitespace-separated token, an integer; everything before it is the path, which may contain spaces
(``train/air drumming/clip 00.mp4 0``). Blank lines and lines starting with '#' are skipped. Where labels are
optional (``labels=False``: prepare, extract_features) a line whose last token is not an integer is a path as a
whole. An official Kinetics CSV (``label,youtube_id,time_start,time_end[,split]``) names
``<label folder>/<youtube_id>_<start:06d>_<end:06d><ext>``. A file with no entries is an error that says so.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["ListFileError", "ListEntry", "CsvEntry", "is_csv", "read_list_file", "read_kinetics_csv",
           "parse_list_file", "parse_kinetics_csv", "class_dir", "annotation_paths"]

Samples = list[tuple[str, int]]
_LABEL = re.compile(r"[+-]?\d+")
CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


class ListFileError(ValueError):
    """A list file or CSV is malformed or empty; the message names the file (and the line)."""


@dataclass(frozen=True)
class ListEntry:
    """One line of a list file: the path as written, its label (None when the line has none), line number, text."""
    path: str
    label: int | None
    line: int
    text: str


@dataclass(frozen=True)
class CsvEntry:
    """One row of an official Kinetics CSV and its line number."""
    label: str
    youtube_id: str
    start: int
    end: int
    line: int

    def filename(self, ext: str = ".mp4") -> str:
        """``<youtube_id>_<start:06d>_<end:06d><ext>``, the name of the downloaded clip."""
        return f"{self.youtube_id}_{self.start:06d}_{self.end:06d}{ext}"


def is_csv(path: str | os.PathLike) -> bool:
    """Whether an annotation file is an official CSV (by its extension) rather than a list file."""
    return str(path).lower().endswith(".csv")


def _empty(path: str | os.PathLike) -> ListFileError:
    return ListFileError(f"0 entries in {path}: the file lists no video (blank and '#' lines do not count)")


def read_list_file(list_file: str | os.PathLike, *, labels: bool = True) -> list[ListEntry]:
    """Entries of a list file (``<path> <label>`` a line, the path may hold spaces); ``labels=False`` accepts lines
    without a label. Raises ListFileError on a line without its label, and on a file with no entries."""
    out: list[ListEntry] = []
    with open(list_file, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            if len(parts) == 2 and _LABEL.fullmatch(parts[1]):
                out.append(ListEntry(parts[0], int(parts[1]), lineno, line))
            elif labels:
                raise ListFileError(f"{list_file}:{lineno}: expected '<path> <label index>', got {line!r}")
            else:
                out.append(ListEntry(line, None, lineno, line))
    if not out:
        raise _empty(list_file)
    return out


def read_kinetics_csv(csv_file: str | os.PathLike) -> list[CsvEntry]:
    """Rows of an official Kinetics CSV; ListFileError on missing columns, a bad time, or no rows."""
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise _empty(csv_file)
        if not set(CSV_COLUMNS) <= set(reader.fieldnames):
            raise ListFileError(f"{csv_file}: expected columns {','.join(CSV_COLUMNS)}, got {reader.fieldnames}")
        rows = list(reader)
    out = []
    for lineno, r in enumerate(rows, 2):
        try:
            start, end = int(float(r["time_start"])), int(float(r["time_end"]))
        except (TypeError, ValueError):
            raise ListFileError(f"{csv_file}:{lineno}: time_start / time_end must be numbers, got "
                                f"{r['time_start']!r}, {r['time_end']!r}") from None
        out.append(CsvEntry(r["label"], r["youtube_id"], start, end, lineno))
    if not out:
        raise _empty(csv_file)
    return out


def class_dir(root: Path, label: str, cache: dict[str, Path]) -> Path:
    """Folder of a class label: the label as is, or with spaces and underscores swapped."""
    if label not in cache:
        names = [label, label.replace(" ", "_"), label.replace("_", " ")]
        cache[label] = next((root / n for n in names if (root / n).is_dir()), root / names[1])
    return cache[label]


def parse_list_file(list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                    num_classes: int | None = None) -> Samples:
    """(path under ``root`` (default: the list's folder), label) of every line; labels checked against num_classes."""
    base = Path(root) if root is not None else Path(list_file).parent
    samples: Samples = []
    for e in read_list_file(list_file):
        if e.label < 0 or (num_classes is not None and e.label >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise ListFileError(f"{list_file}:{e.line}: label {e.label} of {e.path!r} is outside {bound}")
        samples.append((str(base / e.path), e.label))
    return samples


def parse_kinetics_csv(csv_file: str | os.PathLike, root: str | os.PathLike,
                       classes: Sequence[str] | None = None, ext: str = ".mp4") -> tuple[Samples, list[str]]:
    """(path, label index) of every row, files ``root/<label>/<youtube_id>_<start>_<end><ext>``; the classes default
    to the sorted labels of the file."""
    root, cache = Path(root), {}
    rows = read_kinetics_csv(csv_file)
    classes = list(classes) if classes is not None else sorted({r.label for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    samples: Samples = []
    for r in rows:
        if r.label not in index:
            raise ListFileError(f"{csv_file}:{r.line}: label {r.label!r} is not one of the {len(classes)} classes")
        samples.append((str(class_dir(root, r.label, cache) / r.filename(ext)), index[r.label]))
    return samples, classes


def annotation_paths(ann_file: str | os.PathLike, root: str | os.PathLike) -> list[str]:
    """The video paths a list file (labels optional) or CSV names, relative to ``root`` as written."""
    if is_csv(ann_file):
        return [os.path.relpath(p, root) for p, _ in parse_kinetics_csv(ann_file, root)[0]]
    return [e.path for e in read_list_file(ann_file, labels=False)]
