import time

from shared.decide.rootcause import MAX_ANALYSED, MAX_EXCERPT, extract


def test_extract_jvm_caused_by_chain_keeps_deepest_cause_in_excerpt():
    text = (
        "org.apache.spark.SparkException: Job aborted due to stage failure\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJob(DAGScheduler.scala:1)\n"
        "Caused by: java.io.IOException: wrapper\n"
        "\tat a.b.C.d(C.java:1)\n"
        "Caused by: java.lang.OutOfMemoryError: Java heap space\n"
        "\t... 12 more\n"
    )
    rc = extract(text)
    assert rc.excerpt.splitlines()[0] == "java.lang.OutOfMemoryError: Java heap space"
    assert "OutOfMemoryError" in rc.exceptions
    assert "\tat " not in rc.text


def test_extract_python_traceback_last_line():
    text = (
        "Traceback (most recent call last):\n"
        '  File "/Workspace/etl.py", line 3, in <module>\n'
        "    total = a / b\n"
        "ZeroDivisionError: division by zero\n"
    )
    rc = extract(text)
    assert "ZeroDivisionError: division by zero" in rc.excerpt.splitlines()[0]
    assert rc.exceptions == ("ZeroDivisionError",)


def test_extract_py4j_wrapper_exposes_java_cause():
    text = (
        "py4j.protocol.Py4JJavaError: An error occurred while calling o98.execute.\n"
        ": org.apache.spark.sql.delta.schema.InvariantViolationException: NOT NULL constraint violated for column: age.\n"
    )
    rc = extract(text)
    assert "InvariantViolationException" in rc.exceptions
    assert "NOT NULL constraint violated" in rc.excerpt


def test_extract_error_class_and_sqlstate():
    rc = extract("AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `a`.`b` cannot be found. SQLSTATE: 42P01")
    assert rc.error_classes == ("TABLE_OR_VIEW_NOT_FOUND",)
    assert rc.sqlstates == ("42P01",)


def test_extract_error_class_with_subclass():
    rc = extract("[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column cannot be resolved.")
    assert rc.error_classes == ("UNRESOLVED_COLUMN.WITH_SUGGESTION",)


def test_extract_databricks_state_message():
    rc = extract("Notebook not found: /Repos/etl/main")
    assert rc.excerpt == "Notebook not found: /Repos/etl/main"


def test_extract_multi_megabyte_trace_is_bounded_and_keeps_cause():
    frames = "\tat org.apache.spark.rdd.RDD.iterator(RDD.scala:329)\n" * 40_000
    noise = "INFO some executor chatter that goes on and on\n" * 40_000
    text = "Py4JJavaError: An error occurred\n" + frames + noise + \
        "Caused by: java.lang.OutOfMemoryError: GC overhead limit exceeded\n" + noise
    assert len(text) > 5_000_000
    start = time.perf_counter()
    rc = extract(text)
    elapsed = time.perf_counter() - start
    assert len(rc.text) <= MAX_ANALYSED + 100
    assert len(rc.excerpt) <= MAX_EXCERPT
    assert "OutOfMemoryError" in rc.exceptions
    assert rc.truncated
    assert elapsed < 30  # a guard against pathological regex behaviour, not a speed measurement


def test_extract_empty_text():
    rc = extract("")
    assert rc.excerpt == "" and rc.exceptions == ()


def test_extract_excerpt_skips_trace_connector_lines():
    text = ("AnalysisException: [INSUFFICIENT_PERMISSIONS] Insufficient privileges. SQLSTATE: 42501\n\n"
            "The above exception was the direct cause of the following exception:\n\n"
            "Workload failed, see run output for details\n")
    assert "direct cause" not in extract(text).excerpt
    assert "Workload failed" not in extract(text).excerpt
