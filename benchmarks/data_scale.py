"""How the data stages (ingest, clean, tokenize) scale from a 100 MB corpus to the whole of a 600+ MB one.

The corpus is real text from Debian packages fetched with `apt-get download` when the benchmark runs:
documentation (the Linux kernel's, Python's, Debian's own books, library manuals), manual pages,
word lists and dictionaries, in English, and the Chinese packages Debian has (manual pages, the
Debian reference, LibreOffice and GIMP help, ...). Each package is unpacked (`dpkg-deb
--fsys-tarfile`, read as a stream), and each of its text files becomes a document {"text", "source",
"lang"}: HTML through lxml (script and style dropped, block elements on their own lines), man pages
with their roff macros and escapes stripped, plain text (.txt, .rst, .md, .pod, info, word lists,
dictd databases) as it is, gzip'd files decompressed; anything else (images, PDF, code, binaries) is
skipped. A file over 1 MB is cut at line ends into documents of at most that. `lang` is "zh" when at
least 5 % of a document's characters are CJK ideographs, else "en".

Everything fetched or built lives in the cache (default ~/.cache/llmpipe/data_scale), reused when
present: debs/*.deb; docs/<package>.jsonl, each package's documents; corpus/<size>/part-*.jsonl, a
corpus in JSON-lines parts of about 64 MB (corpus/<size>.json says what it holds). A corpus of N MB
takes from every package, for each language, the first of its documents up to their share of N (their
share of the whole corpus), so every size mixes the same packages, and Chinese, in the same proportions.

For each size (default: 100 MB, then the whole corpus), the benchmark makes a scratch project in
--work/<size> (default /tmp/llmpipe-data-scale), composes its params.yaml from this repository's conf/
(the own-corpus recipe: ingest.format=jsonl, ingest.source=the corpus folder, no per-file cap;
hardware.clean and hardware.tokenize with the local executor and --workers workers), and runs
`python -m llmpipe.stages.ingest`, then clean, then tokenize, each in its own process in the project
root, as DVC would. Per stage it measures:
  - wall time, and MB/s per worker = input MB / wall seconds / workers (input MB: the UTF-8 bytes of
    the corpus's texts, the same for every stage; ingest runs in one process, so 1 worker);
  - peak RSS, sampled every 0.2 s over the stage's process and all its descendants: the largest of
    any one process, and the largest sum over them (forked workers share pages, so the sum
    overstates what the machine gives them);
  - disk use of the stage's output folder (data/raw, data/clean, data/tokens) and of data/work.
It prints a markdown table, the ratios whole / 100 MB per stage, peak RSS (goal: at most 1.2, and
under 2 GB) and seconds per MB (goal: at most 1.25), and all of it as JSON (also written to
--work/results.json). Each stage's output is in --work/<size>/logs/<stage>.log.

Run (with the project's virtual environment; fetching needs apt, as root):
  .venv/bin/python benchmarks/data_scale.py                  # fetch, build, then 100 MB and the whole
  .venv/bin/python benchmarks/data_scale.py --sizes 5        # a quick try on 5 MB
  .venv/bin/python benchmarks/data_scale.py --skip-fetch     # the cache as it is, no apt
  .venv/bin/python benchmarks/data_scale.py --packages manpages,manpages-zh --sizes all
"""

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = Path.home() / ".cache" / "llmpipe" / "data_scale"
DEFAULT_WORK = Path("/tmp/llmpipe-data-scale")
MB = 1_000_000
PART_BYTES = 64 * MB  # a corpus part is closed once it holds this much
MAX_DOC_BYTES = 1 * MB  # a longer file is cut into documents of at most this (at line ends)
STAGES = ["ingest", "clean", "tokenize"]
OUTPUT_DIRS = {"ingest": "data/raw", "clean": "data/clean", "tokenize": "data/tokens"}
SAMPLE_SECONDS = 0.2
RSS_RATIO_GOAL, RSS_GOAL_MB, TIME_RATIO_GOAL = 1.2, 2000, 1.25

# Debian 12 (bookworm) main. English: about 640 MB of text; Chinese: about 28 MB (some of the Chinese
# packages' pages are untranslated English, and count as English).
PACKAGES = [
    # kernel, languages and libraries (HTML, reStructuredText)
    "linux-doc-6.1",
    "python3.11-doc",
    "cppreference-doc-en-html",
    "libstdc++-12-doc",
    "libboost1.81-doc",
    "postgresql-doc-15",
    "sqlite3-doc",
    "python-django-doc",
    "python-scipy-doc",
    "python-pandas-doc",
    "python-sklearn-doc",
    "python-sympy-doc",
    "python-statsmodels-doc",
    "python-astropy-doc",
    "sphinx-doc",
    "twisted-doc",
    "erlang-doc",
    "racket-doc",
    "nodejs-doc",
    "perl-doc",
    "git-doc",
    "bash-doc",
    "vim-doc",
    "octave-doc",
    "maxima-doc",
    "gnuplot-doc",
    "qtbase5-doc-html",
    "openjdk-17-doc",
    "gnucash-docs",
    "lilypond-doc-html",
    # Debian's books and manuals
    "debian-handbook",
    "debian-reference-en",
    "debian-policy",
    "developers-reference",
    "maint-guide",
    "debian-faq",
    "debian-history",
    # manual pages
    "manpages",
    "manpages-dev",
    # word lists and dictionaries
    "wamerican-huge",
    "wbritish-huge",
    "dict-gcide",
    "dict-wn",
    "dict-foldoc",
    "dict-jargon",
    # Chinese
    "manpages-zh",
    "debian-reference-zh-cn",
    "debian-reference-zh-tw",
    "libreoffice-help-zh-cn",
    "libreoffice-help-zh-tw",
    "gimp-help-zh-cn",
    "kicad-doc-zh",
    "debian-edu-doc-zh-cn",
    "lilypond-doc-html-zh",
    "maint-guide-zh-cn",
    "maint-guide-zh-tw",
    "debian-faq-zh-cn",
]

# ---------------------------------------------------------------------------------------------------
# fetching


def fetch(packages: list[str], debs: Path) -> list[str]:
    """`apt-get download` each package not yet in `debs`; the packages that have a .deb there."""
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not deb_of(p, debs)]
    if missing and not all(apt_knows(p) for p in missing):
        print("some packages unknown to apt: apt-get update", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
    unknown = [p for p in missing if not apt_knows(p)]
    wanted = [p for p in missing if p not in unknown]
    if unknown:
        print(f"not available from apt, skipped: {' '.join(unknown)}", flush=True)
    if wanted:
        print(f"apt-get download {len(wanted)} packages into {debs}", flush=True)
        # the sandbox user _apt cannot write into root's home: download as the caller
        command = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *wanted]
        done = subprocess.run(command, cwd=debs, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr.strip(), file=sys.stderr)
    return [p for p in packages if deb_of(p, debs)]


def apt_knows(package: str) -> bool:
    policy = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    return "Candidate:" in policy and "Candidate: (none)" not in policy


def deb_of(package: str, debs: Path) -> Path | None:
    found = sorted(debs.glob(f"{package}_*.deb"))
    return found[-1] if found else None


# ---------------------------------------------------------------------------------------------------
# files to documents

TEXT_SUFFIXES = {"", ".txt", ".text", ".rst", ".md", ".markdown", ".pod", ".org", ".adoc", ".asciidoc", ".dict"}
SKIP_DIRS = {"_sources", "_static", "_images", "_downloads", "images", "examples"}
SKIP_NAMES = {"copyright", "changelog", "changelog.debian"}  # packaging, not documentation
BLOCK_TAGS = "p div br li dt dd tr h1 h2 h3 h4 h5 h6 pre table section article blockquote title hr ul ol dl".split()
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
TRAILING_SPACE = re.compile(r"[ \t]+\n")


def kind_of(path: str) -> str | None:
    """'html', 'man', 'text' or None (skipped), from a path inside a package (its .gz/.dz taken off)."""
    parts = path.lower().split("/")
    name = parts[-1]
    stem, suffix = os.path.splitext(name)
    if set(parts[:-1]) & SKIP_DIRS or name in SKIP_NAMES or stem in SKIP_NAMES:
        return None
    if "man" in parts[:-1] and re.fullmatch(r"\.[1-9][a-z0-9]*", suffix):
        return "man"
    if suffix in (".html", ".htm", ".xhtml"):
        return "html"
    if suffix in TEXT_SUFFIXES or re.fullmatch(r"\.info(-\d+)?", suffix):
        return "text"
    return None


def decode(data: bytes, package: str) -> str | None:
    encodings = ["utf-8", "gb18030", "big5"] if "-zh" in package else ["utf-8", "latin-1"]
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return None


def html_to_text(data: bytes) -> str:
    import lxml.html  # in the venv (sacrebleu's); 6x the speed of html.parser here

    try:
        root = lxml.html.document_fromstring(data)
    except (ValueError, lxml.etree.ParserError):  # empty, or nothing but a comment
        return ""
    for element in root.xpath("//script|//style|//head"):
        element.drop_tree()
    for element in root.iter(*BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")
    return "\n".join(line.strip() for line in root.text_content().splitlines())  # no source indentation


ROFF_ESCAPE = re.compile(r"\\(\(..|\[[^\]]*\]|[fF*n](?:\(..|\[[^\]]*\]|.)|s[-+]?\d+|.)")
ROFF_CHARACTERS = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "(em": "—", "(en": "–", "(bu": "•"}
ROFF_CHARACTERS |= {"(aq": "'", "(dq": '"', "(lq": "“", "(rq": "”", "(co": "©", "(mu": "×", "(>=": "≥"}
ROFF_NO_TEXT = set("TH PP LP P br sp nf fi RS RE in ti ad na hy nh ne ft ps ds so TP PD Dd Dt Os Bl El".split())
ROFF_NO_TEXT |= set("Bd Ed ll ta ce if ie el rm tr nr UC DT HP".split())


def man_to_text(source: str) -> str:
    """Crude roff: the text lines and the arguments of text macros (.SH, .B, .IR ...), escapes removed."""
    lines, in_definition = [], False
    for line in source.splitlines():
        if in_definition:  # the body of a macro definition (.de, .am, .ig), up to ".."
            in_definition = line.strip() != ".."
            continue
        if line.startswith((".", "'")):
            macro, _, args = line[1:].strip().partition(" ")
            if macro in ("de", "am", "ig"):
                in_definition = True
                continue
            if macro.startswith('\\"') or macro in ROFF_NO_TEXT:
                if macro in ("PP", "LP", "P", "sp", "TP"):
                    lines.append("")
                continue
            line = args.replace('"', "")
        line = line.split('\\"', 1)[0]  # a comment to the end of the line
        lines.append(ROFF_ESCAPE.sub(lambda m: ROFF_CHARACTERS.get(m.group(1), ""), line))
    return "\n".join(lines)


def to_text(kind: str, data: bytes, package: str) -> str | None:
    if b"\0" in data[:8192]:
        return None  # binary
    if kind == "html":
        text = html_to_text(data)
    else:
        text = decode(data, package)
        if text is None:
            return None
        if kind == "man":
            text = man_to_text(text)
    text = CONTROL.sub("", text.replace("\r\n", "\n"))
    return BLANK_LINES.sub("\n\n", TRAILING_SPACE.sub("\n", text)).strip()


def language(text: str) -> str:
    return "zh" if len(CJK.findall(text)) >= 0.05 * len(text) else "en"


def pieces(text: str, limit: int = MAX_DOC_BYTES) -> list[str]:
    """`text` cut at line ends into pieces of at most about `limit` UTF-8 bytes."""
    if len(text.encode("utf-8")) <= limit:
        return [text]
    out, current, size = [], [], 0
    for line in text.splitlines(keepends=True):
        n = len(line.encode("utf-8"))
        if current and size + n > limit:
            out.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += n
    out.append("".join(current))
    return [p for p in (p.strip() for p in out) if p]


def package_documents(deb: Path, package: str):
    """(source, text) of each text file in a .deb, read from `dpkg-deb --fsys-tarfile` as a stream."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as unpack:
        with tarfile.open(fileobj=unpack.stdout, mode="r|") as tar:
            for member in tar:
                path = member.name.removeprefix("./")
                compressed = path.endswith((".gz", ".dz"))  # dictd's .dz is gzip
                kind = kind_of(path[:-3] if compressed else path)
                if not member.isfile() or kind is None:
                    continue
                data = tar.extractfile(member).read()
                if compressed:
                    try:
                        data = gzip.decompress(data)
                    except (OSError, EOFError, zlib.error):
                        continue
                text = to_text(kind, data, package)
                if text:
                    yield f"{package}/{path}", text
    if unpack.returncode != 0:
        raise RuntimeError(f"dpkg-deb --fsys-tarfile {deb} failed ({unpack.returncode})")


def extract(package: str, deb: Path, docs: Path) -> dict:
    """docs/<package>.jsonl (one document per line) and docs/<package>.json (its counts), unless there."""
    out, stats_file = docs / f"{package}.jsonl", docs / f"{package}.json"
    if out.is_file() and stats_file.is_file():
        return json.loads(stats_file.read_text())
    docs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stats = {"package": package, "deb": deb.name, "docs": 0, "bytes": {"en": 0, "zh": 0}}
    tmp = out.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for source, text in package_documents(deb, package):
            for i, piece in enumerate(pieces(text)):
                lang = language(piece)
                name = source if i == 0 else f"{source}#{i}"
                f.write(json.dumps({"text": piece, "source": name, "lang": lang}, ensure_ascii=False) + "\n")
                stats["docs"] += 1
                stats["bytes"][lang] += len(piece.encode("utf-8"))
    tmp.replace(out)
    stats_file.write_text(json.dumps(stats, indent=1) + "\n")
    mb = sum(stats["bytes"].values()) / MB
    print(f"  {package}: {stats['docs']} documents, {mb:.1f} MB ({time.perf_counter() - started:.0f} s)", flush=True)
    return stats


# ---------------------------------------------------------------------------------------------------
# corpora


def build_corpus(stats: list[dict], docs: Path, corpora: Path, size_mb: float | None) -> tuple[Path, dict]:
    """corpus/<label>/part-*.jsonl: from each package, for each language, its first documents up to
    their share of size_mb (a document is taken when at least half of it fits; None: all of them),
    written in parts of about PART_BYTES; reused when corpus/<label>.json agrees."""
    label = size_label(size_mb)
    folder, manifest_file = corpora / label, corpora / f"{label}.json"
    packages = [s["package"] for s in stats]
    if manifest_file.is_file() and folder.is_dir():
        manifest = json.loads(manifest_file.read_text())
        if manifest["packages"] == packages and manifest["size_mb"] == size_mb:
            return folder, manifest
    total = sum(sum(s["bytes"].values()) for s in stats)
    fraction = 1.0 if size_mb is None else min(1.0, size_mb * MB / total)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    manifest = {"packages": packages, "size_mb": size_mb, "docs": 0, "bytes": {"en": 0, "zh": 0}, "parts": 0}
    part, written = None, PART_BYTES
    for s in stats:
        budget = {lang: fraction * n for lang, n in s["bytes"].items()}  # each language in proportion
        taken = dict.fromkeys(budget, 0)
        with (docs / f"{s['package']}.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                doc = json.loads(line)
                lang, n = doc["lang"], len(doc["text"].encode("utf-8"))
                if taken[lang] + n / 2 > budget[lang]:
                    continue  # not even half of it fits in what is left of the share: a later one may
                if written >= PART_BYTES:
                    if part:
                        part.close()
                    part = (folder / f"part-{manifest['parts']:05d}.jsonl").open("w", encoding="utf-8")
                    manifest["parts"], written = manifest["parts"] + 1, 0
                part.write(line)
                written += len(line.encode("utf-8"))
                taken[lang] += n
                manifest["docs"] += 1
                manifest["bytes"][lang] += n
    if part:
        part.close()
    manifest_file.write_text(json.dumps(manifest, indent=1) + "\n")
    return folder, manifest


def size_label(size_mb: float | None) -> str:
    return "all" if size_mb is None else f"{size_mb:g}MB"


# ---------------------------------------------------------------------------------------------------
# running the stages


def write_params(project: Path, corpus: Path, workers: int) -> int:
    """params.yaml for the own-corpus JSON-lines recipe; the workers tokenize runs with (1 when the
    conf has no hardware.tokenize section yet)."""
    import yaml

    from llmpipe.config import compose

    overrides = [
        "ingest.format=jsonl",
        f"ingest.source={corpus}",
        "ingest.max_docs_per_file=null",
        "hardware.clean.executor=local",
        f"hardware.clean.workers={workers}",
    ]
    conf = REPO / "conf"
    tokenize_workers = 1
    if "tokenize" in yaml.safe_load(compose(overrides, conf_dir=conf))["hardware"]:
        overrides += ["hardware.tokenize.executor=local", f"hardware.tokenize.workers={workers}"]
        tokenize_workers = workers
    else:
        print("  conf/hardware has no `tokenize` section: tokenize runs with its defaults (1 worker)", flush=True)
    (project / "params.yaml").write_text(compose(overrides, conf_dir=conf), encoding="utf-8")
    return tokenize_workers


class PeakRss:
    """Samples the RSS of a process and all its descendants every SAMPLE_SECONDS, in a thread."""

    def __init__(self, pid: int):
        self.root, self.single, self.total = psutil.Process(pid), 0, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while not self.stopped.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:  # the stage's process has ended
                return
            sizes = []
            for process in processes:
                try:
                    sizes.append(process.memory_info().rss)
                except psutil.Error:  # ended since it was listed
                    pass
            self.single = max(self.single, *sizes, 0)
            self.total = max(self.total, sum(sizes))
            self.stopped.wait(SAMPLE_SECONDS)

    def stop(self):
        self.stopped.set()
        self.thread.join()


def disk_mb(path: Path) -> float:
    """Disk use (allocated blocks) of a file or folder, in MB; 0 when absent."""
    if not path.exists():
        return 0.0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_blocks * 512 for p in files) / MB


def run_stage(stage: str, project: Path, input_mb: float, workers: int) -> dict:
    log = project / "logs" / f"{stage}.log"
    log.parent.mkdir(exist_ok=True)
    command = [sys.executable, "-m", f"llmpipe.stages.{stage}"]
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=project, stdout=out, stderr=subprocess.STDOUT)
        rss = PeakRss(process.pid)
        returncode = process.wait()
    wall = time.perf_counter() - started
    rss.stop()
    result = {
        "stage": stage,
        "returncode": returncode,
        "wall_s": round(wall, 2),
        "input_mb": round(input_mb, 2),
        "workers": workers,
        "mb_s_per_worker": round(input_mb / wall / workers, 3),
        "peak_rss_single_mb": round(rss.single / MB, 1),
        "peak_rss_sum_mb": round(rss.total / MB, 1),
        "output_mb": round(disk_mb(project / OUTPUT_DIRS[stage]), 1),
        "work_mb": round(disk_mb(project / "data" / "work"), 1),
    }
    if returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        result["error"] = "\n".join(tail)
    return result


def encode_speed(project: Path, workers: int) -> dict:
    """tokenize's encoding job (EncodeShard on datatrove's local executor, `workers` processes)
    against one Hugging Face `encode_batch` process (batches of 4,096 texts, its own threads), on
    every document of the project's data/clean with the tokenizer tokenize trained: seconds each, and
    whether the two token streams are identical."""
    import numpy as np

    from llmpipe.data.executors import run_in_order
    from llmpipe.data.splits import Placement
    from llmpipe.data.token_files import token_dtype
    from llmpipe.data.tokenizer import EOT, load_tokenizer, special_id
    from llmpipe.jsonl import iter_folder
    from llmpipe.schema import DataHardware
    from llmpipe.tokenize.encode import EncodeShard

    clean, out = project / "data" / "clean", project / "encode_speed"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    shutil.copy(project / "data" / "tokens" / "tokenizer.json", out / "tokenizer.json")
    tokenizer = load_tokenizer(out / "tokenizer.json")
    eot, dtype = special_id(tokenizer, EOT), token_dtype(tokenizer.get_vocab_size())
    shards = sorted(clean.glob("*.jsonl"))
    everything_trains = Placement("hash", 0.0, 0.0)
    step = EncodeShard(shards, out, everything_trains, True, eot, np.dtype(dtype).name)
    started = time.perf_counter()
    run_in_order([("encode", [step], len(shards))], DataHardware("local", None, workers), out / "work", "bench")
    ours_s = time.perf_counter() - started
    ours = np.concatenate([np.fromfile(path, dtype=dtype) for path in sorted((out / "train").glob("*.bin"))])

    texts = [doc["text"] for doc in iter_folder(clean)]
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    started = time.perf_counter()
    pieces = []
    for start in range(0, len(texts), 4096):
        for encoded in tokenizer.encode_batch(texts[start : start + 4096]):
            pieces.append(np.array([*encoded.ids, eot], dtype=dtype))
    hf_s = time.perf_counter() - started
    theirs = np.concatenate(pieces)
    shutil.rmtree(out)
    return {
        "mb": round(n_bytes / MB, 1),
        "tokens": int(len(theirs)),
        "tokenize_encode_s": round(ours_s, 2),
        "hf_encode_batch_s": round(hf_s, 2),
        "speedup": round(hf_s / ours_s, 2),
        "identical_ids": bool(len(ours) == len(theirs) and (ours == theirs).all()),
        "workers": workers,
    }


def run_size(label: str, corpus: Path, manifest: dict, work: Path, workers: int, compare_encoding: bool) -> list[dict]:
    project = work / label
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    input_mb = sum(manifest["bytes"].values()) / MB
    print(f"\n{label}: {input_mb:.1f} MB, {manifest['docs']} documents, in {project}", flush=True)
    tokenize_workers = write_params(project, corpus, workers)
    stage_workers = {"ingest": 1, "clean": workers, "tokenize": tokenize_workers}
    results = []
    for stage in STAGES:
        result = {"size": label, **run_stage(stage, project, input_mb, stage_workers[stage])}
        results.append(result)
        print(
            f"  {stage}: rc {result['returncode']}, {result['wall_s']} s, "
            f"peak RSS {result['peak_rss_single_mb']} MB (sum {result['peak_rss_sum_mb']} MB)",
            flush=True,
        )
        if result["returncode"] != 0:
            print(f"  {stage} failed; later stages not run. Its log ends:\n{result['error']}", flush=True)
            return results
    if compare_encoding:
        speed = encode_speed(project, workers)
        print(f"  encoding: {speed}", flush=True)
        results.append({"size": label, "stage": "encode vs HF", **speed})
    return results


# ---------------------------------------------------------------------------------------------------
# report

COLUMNS = [
    ("size", "size"),
    ("stage", "stage"),
    ("returncode", "rc"),
    ("wall_s", "wall s"),
    ("input_mb", "input MB"),
    ("workers", "workers"),
    ("mb_s_per_worker", "MB/s/worker"),
    ("peak_rss_single_mb", "peak RSS MB (1 proc)"),
    ("peak_rss_sum_mb", "peak RSS MB (sum)"),
    ("output_mb", "output MB"),
    ("work_mb", "data/work MB"),
]


def table(results: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(r[key]) for key, _ in COLUMNS) + " |" for r in results if "wall_s" in r]
    for r in results:
        if "speedup" in r:
            lines.append(
                f"\nencoding {r['mb']} MB ({r['size']}): tokenize's job on {r['workers']} workers "
                f"{r['tokenize_encode_s']} s, one HF encode_batch process {r['hf_encode_batch_s']} s: "
                f"{r['speedup']}x (goal >= 3x), ids identical: {r['identical_ids']}"
            )
    return "\n".join(lines)


def ratios(results: list[dict], base: str) -> list[dict]:
    """Each stage of each size against the same stage at size `base`, where both finished."""
    done = {(r["size"], r["stage"]): r for r in results if r.get("returncode") == 0}
    out = []
    for (size, stage), r in done.items():
        b = done.get((base, stage))
        if size == base or b is None:
            continue
        rss = r["peak_rss_single_mb"] / max(b["peak_rss_single_mb"], 1)  # the goal is per process
        seconds_per_mb = (r["wall_s"] / r["input_mb"]) / (b["wall_s"] / b["input_mb"])
        out.append(
            {
                "size": size,
                "base": base,
                "stage": stage,
                "rss_ratio_sum": round(r["peak_rss_sum_mb"] / max(b["peak_rss_sum_mb"], 1), 3),
                "rss_ratio_single": round(rss, 3),
                "time_per_mb_ratio": round(seconds_per_mb, 3),
                "rss_ok": rss <= RSS_RATIO_GOAL and r["peak_rss_single_mb"] <= RSS_GOAL_MB,
                "time_ok": seconds_per_mb <= TIME_RATIO_GOAL,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[float | None]:
    return [None if s.strip() == "all" else float(s) for s in text.split(",") if s.strip()]


def outside_repo(path: Path, what: str) -> Path:
    path = path.expanduser().resolve()
    if path.is_relative_to(REPO):
        sys.exit(f"{what} {path} is inside the repository {REPO}: choose a folder outside it")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="debs, documents, corpora (reused)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch projects, one per size")
    parser.add_argument("--sizes", default="100,all", help="corpus sizes in MB, comma-separated; `all`: everything")
    parser.add_argument("--skip-fetch", action="store_true", help="no apt: use the .debs already in the cache")
    parser.add_argument("--packages", help="comma-separated Debian packages instead of the default list")
    parser.add_argument("--workers", type=int, default=2, help="hardware.clean.workers and hardware.tokenize.workers")
    parser.add_argument("--corpus-only", action="store_true", help="fetch and build the corpora, run no stage")
    args = parser.parse_args()
    cache, work = outside_repo(args.cache, "--cache"), outside_repo(args.work, "--work")
    packages = args.packages.split(",") if args.packages else PACKAGES
    sizes = parse_sizes(args.sizes)

    debs = cache / "debs"
    if not args.skip_fetch:
        packages = fetch(packages, debs)
    print(f"documents of {len(packages)} packages (extracted once into {cache / 'docs'})", flush=True)
    stats = []
    for package in packages:
        deb = deb_of(package, debs)
        if deb is None:
            print(f"  {package}: no .deb in {debs}, skipped", flush=True)
            continue
        stats.append(extract(package, deb, cache / "docs"))
    if not stats:
        sys.exit("no packages: nothing to build a corpus from")
    en, zh = (sum(s["bytes"][lang] for s in stats) / MB for lang in ("en", "zh"))
    print(f"corpus: {len(stats)} packages, {en:.1f} MB English, {zh:.1f} MB Chinese", flush=True)

    corpora = {}
    for size in sizes:
        folder, manifest = build_corpus(stats, cache / "docs", cache / "corpus", size)
        corpora[size_label(size)] = (folder, manifest)
        mb = {lang: round(n / MB, 1) for lang, n in manifest["bytes"].items()}
        print(f"  {folder}: {manifest['docs']} documents, {mb} MB, {manifest['parts']} parts", flush=True)
    if args.corpus_only:
        return

    results = []
    for i, (label, (folder, manifest)) in enumerate(corpora.items()):
        results += run_size(label, folder, manifest, work, args.workers, compare_encoding=i == 0)
    compared = ratios(results, base=size_label(sizes[0]))

    print("\n" + table(results))
    if compared:
        goals = f"RSS <= {RSS_RATIO_GOAL} and <= {RSS_GOAL_MB} MB, seconds per MB <= {TIME_RATIO_GOAL}"
        print(f"\nratios against {size_label(sizes[0])} (goals: {goals})")
        for c in compared:
            print(
                f"  {c['size']} {c['stage']}: RSS x{c['rss_ratio_single']} (1 proc), x{c['rss_ratio_sum']} (sum)"
                f" {'ok' if c['rss_ok'] else 'MISSED'}; s/MB x{c['time_per_mb_ratio']}"
                f" {'ok' if c['time_ok'] else 'MISSED'}"
            )
    packages_info = [{"package": s["package"], "deb": s["deb"], "docs": s["docs"], "bytes": s["bytes"]} for s in stats]
    dump = {"results": results, "ratios": compared, "packages": packages_info}
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(dump, indent=1) + "\n")
    print("\n" + json.dumps({"results": results, "ratios": compared}, indent=1))


if __name__ == "__main__":
    main()
