"""Fingerprints: the same failure with other ids and times hashes the same; other failures do not."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

import shared.decide.fingerprint as fp_mod
from shared.decide.fingerprint import fingerprint, normalise

CORPUS = Path(__file__).parents[1] / "corpus" / "dev"

_OOM = (
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task {task} in stage {stage}.0 failed 4 "
    "times, most recent failure: Lost task {task}.3 in stage {stage}.0 (TID {tid}) ({ip} executor {ex}): "
    "java.lang.OutOfMemoryError: Java heap space\n"
    "\tat org.apache.spark.sql.execution.Foo.bar(Foo.scala:{line})\n"
    "\tat org.apache.spark.rdd.RDD.$anonfun$compute$1(RDD.scala:{line2})\n"
    "\t... {more} more"
)


def test_fingerprint_same_failure_other_ids_and_times_same():
    a = _OOM.format(task=3, stage=7, tid=112, ip="10.139.64.5", ex=2, line=12, line2=88, more=14)
    b = _OOM.format(task=17, stage=231, tid=90412, ip="10.1.2.200", ex=11, line=13, line2=91, more=3)
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize("template,values", [
    ("Run {0} failed at {1} on cluster {2} (request {3})",
     [("1234567", "2024-07-18T18:36:35.1234567Z", "0718-183635-abcd1234", "3f2a1b4c-1234-4abc-8def-0123456789ab"),
      ("98765", "2025-01-02T03:04:05Z", "0102-030405-ef015678", "00000000-aaaa-4bbb-8ccc-dddddddddddd")]),
    ("Error reading {0}: file not found, written by {1}",
     [("abfss://raw@acct1.dfs.core.windows.net/a/part-0001.parquet", "alice@example.com"),
      ("abfss://gold@acct2.dfs.core.windows.net/b/c/part-9999.parquet", "bob.smith@example.org")]),
    ("KeyError: {0} in /Workspace/Repos/{1}/etl/main.py line {2}",
     [("'customer_id'", "alice", "12"), ("'order_ts'", "bob", "340")]),
    ("Connection to {0} timed out at {1} (object {2})",
     [("10.0.0.4:5432", "Mon, 01 Jan 2024 10:00:00 GMT", "o123"),
      ("172.16.9.20:1433", "Fri, 17 May 2024 23:59:59 GMT", "o98765")]),
    ("at 24/05/17 10:00:01 thread pool-{0}-thread-{1} address {2}",
     [("3", "7", "0x7f3a9c00"), ("12", "1", "0xdeadbeef01")]),
])
def test_fingerprint_volatile_parts_do_not_change_it(template, values):
    assert len({fingerprint(template.format(*v)) for v in values}) == 1


@pytest.mark.parametrize("a,b", [
    ("java.lang.OutOfMemoryError: Java heap space", "java.lang.OutOfMemoryError: GC overhead limit exceeded"),
    ("[TABLE_OR_VIEW_NOT_FOUND] The table `a` cannot be found. SQLSTATE: 42P01",
     "[UNRESOLVED_COLUMN] A column `a` cannot be resolved. SQLSTATE: 42703"),
    ("Command exited with exit code 137", "Command exited with exit code 1"),
    ("Request failed with status code 403", "Request failed with status code 503"),
    ('{"error_code": "PERMISSION_DENIED", "message": "no"}', '{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no"}'),
    ("NameError: name 'x' is not defined", "TypeError: 'x' object is not callable"),
])
def test_fingerprint_different_errors_differ(a, b):
    assert fingerprint(a) != fingerprint(b)


def test_fingerprint_category_is_part_of_the_hash():
    text = "Something odd happened"
    assert fingerprint(text, category="NETWORK") != fingerprint(text, category="UNKNOWN")
    assert fingerprint(text) == fingerprint(text, category=None)


def test_fingerprint_is_short_hex_and_deterministic():
    f = fingerprint("java.net.ConnectException: Connection refused")
    assert re.fullmatch(r"[0-9a-f]{16}", f)
    assert f == fingerprint("java.net.ConnectException: Connection refused")


def test_fingerprint_empty_text():
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint(""))
    assert normalise("") == ""


def test_fingerprint_long_trace_keeps_its_tail():
    head = "Traceback (most recent call last):\n" + "".join(
        f'  File "/databricks/python/lib/mod{i}.py", line {i}, in step{i}\n    do_step{i}()\n' for i in range(400)
    )
    assert fingerprint(head + "KeyError: 'a'") != fingerprint(head + "ValueError: bad value")


def test_normalise_placeholders():
    text = ("Job 123 at 2024-07-18T18:36:35Z from 10.139.64.5 by alice@example.com reading "
            "abfss://raw@acct1.dfs.core.windows.net/x.parquet and /dbfs/tmp/x/y.csv, table `main`.`t`, "
            "run 3f2a1b4c-1234-4abc-8def-0123456789ab, id a1b2c3d4e5f6, SQLSTATE: 42P01, exit code 137")
    n = normalise(text)
    assert n == ("Job <n> at <ts> from <ip> by <email> reading <url> and <path>, table <str>.<str>, "
                 "run <uuid>, id <hex>, SQLSTATE: 42P01, exit code 137")


def test_normalise_drops_java_frames_and_keeps_causes():
    text = ("org.apache.spark.SparkException: boom\n\tat a.b.C.d(C.java:12)\n\tat a.b.C.e(C.java:40)\n"
            "Caused by: java.io.IOException: disk\n\t... 7 more")
    assert normalise(text) == "org.apache.spark.SparkException: boom\nCaused by: java.io.IOException: disk"


def test_normalise_keeps_error_codes_and_exception_names_in_quotes():
    n = normalise("""{"error_code": "INVALID_PARAMETER_VALUE"} raised 'java.io.FileNotFoundException'""")
    assert '"INVALID_PARAMETER_VALUE"' in n and "'java.io.FileNotFoundException'" in n


def test_fingerprint_dev_corpus_collides_only_within_a_category():
    by_fp: dict[str, set[str]] = defaultdict(set)
    for path in sorted(CORPUS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        text = "\n".join(str(o.get("error_trace") or o.get("error") or "") for o in doc["task_outputs"].values())
        text += "\n".join(str((t.get("state") or {}).get("state_message") or "") for t in doc["run"].get("tasks", []))
        by_fp[fingerprint(text)].add(doc["expected"]["category"])
    assert len(by_fp) > 60
    assert all(len(cats) == 1 for cats in by_fp.values())


def test_normalise_megabyte_input_completes():
    text = ("a" * 70 + " 0x1f /a/b/c 'q' 12.5 ") * 20000 + "'" * 100000 + "/" * 100000 + ":" * 100000
    assert len(normalise(text)) > 0


def test_fingerprint_module_exports():
    assert set(fp_mod.__all__) == {"NORMALISER_VERSION", "normalise", "fingerprint"}
