"""run_handler: payload in, JSON value out; handler failures come back as clean 422s without host details."""

from __future__ import annotations

import sys

from app.sandbox.syscall_filter import compiled_filter
from tests.sandbox.conftest import assert_next_call_succeeds, call, failure


def test_payload_in_result_out():
    source = """
        import math

        def handler(payload):
            return {"total": sum(payload["values"]), "root": math.sqrt(payload["square"]), "name": payload["name"]}
    """
    result = call(source, {"values": [1, 2, 3], "square": 16, "name": "Zoë"})
    assert result == {"total": 6, "root": 4.0, "name": "Zoë"}


def test_any_json_value_comes_back():
    assert call("def handler(payload):\n    return None\n") is None
    assert call("def handler(payload):\n    return [1, 'a', True, 2.5]\n") == [1, "a", True, 2.5]


def test_printing_does_not_corrupt_the_result():
    source = """
        import sys

        def handler(payload):
            print("debug", payload)
            sys.stderr.write("noise\\n")
            return "done"
    """
    assert call(source, {"a": 1}) == "done"


def test_an_exception_surfaces_its_type_message_and_line_without_host_paths():
    source = """
        def handler(payload):
            value = payload["x"]
            raise ValueError(f"x must be positive, got {value}")
    """
    err = failure(source, {"x": -3})
    assert (err.status, err.code) == (422, "function_error")
    assert "ValueError" in err.message and "x must be positive, got -3" in err.message
    assert err.details["line"] == 4
    for host_detail in ("/work", "/root", "child.py", "Traceback", "site-packages"):
        assert host_detail not in err.message
    assert_next_call_succeeds()


def test_an_exception_deep_in_the_stdlib_still_names_the_handler_line():
    source = """
        import json

        def handler(payload):
            return json.loads(payload)
    """
    err = failure(source, "{not json")
    assert err.code == "function_error"
    assert "JSONDecodeError" in err.message
    assert err.details["line"] == 5
    assert "/root" not in err.message and "/usr" not in err.message


def test_a_source_without_handler_at_run_time_is_a_function_error():
    err = failure("def other(payload):\n    return 1\n")
    assert (err.status, err.code) == (422, "function_error")
    assert "handler(payload)" in err.message


def test_sys_exit_is_reported_not_a_crash():
    err = failure("import sys\n\ndef handler(payload):\n    sys.exit(3)\n")
    assert (err.status, err.code) == (422, "function_error")
    assert "SystemExit" in err.message


def test_a_non_json_return_value_is_a_bad_result():
    err = failure("def handler(payload):\n    return {1, 2}\n")
    assert (err.status, err.code) == (422, "function_bad_result")
    assert "set" in err.message
    assert_next_call_succeeds()


def test_nan_is_not_json():
    err = failure("def handler(payload):\n    return float('nan')\n")
    assert err.code == "function_bad_result"


def test_a_process_that_dies_without_a_reply_is_a_crash_without_host_details():
    err = failure("import os\n\ndef handler(payload):\n    os._exit(9)\n")
    assert (err.status, err.code) == (502, "function_crashed")
    assert "/" not in err.message
    assert_next_call_succeeds()


def test_a_garbled_reply_is_a_crash():
    source = """
        import os

        def handler(payload):
            for fd in range(3, 64):
                try:
                    os.write(fd, b"not json\\n")
                except OSError:
                    pass
            os._exit(0)
    """
    assert failure(source).code == "function_crashed"


def test_a_payload_that_is_not_json_is_refused_before_running():
    err = failure("def handler(payload):\n    return 1\n", {"when": object()})
    assert err.status == 422 and "payload" in err.details["fields"]


def test_a_worker_without_bwrap_refuses_instead_of_running_unjailed(monkeypatch):
    monkeypatch.setattr("app.sandbox.jail.shutil.which", lambda name: None)
    monkeypatch.setattr("app.sandbox.jail.os.access", lambda path, mode: False)
    err = failure("def handler(payload):\n    return 1\n")
    assert (err.status, err.code) == (503, "function_sandbox_unavailable")


def test_a_jail_that_cannot_start_is_reported_as_unavailable(tmp_path, monkeypatch):
    # A fake bwrap that fails the way it does where namespaces are forbidden (e.g. a locked-down container).
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr("app.sandbox.jail.shutil.which", lambda name: str(fake))
    err = failure("def handler(payload):\n    return 1\n")
    assert (err.status, err.code) == (503, "function_sandbox_unavailable")
    assert "namespace" not in err.message


def test_a_worker_without_the_system_call_filter_refuses_instead_of_running_unfiltered(monkeypatch):
    # As where libseccomp is missing: the filter cannot be built, so no handler runs.
    compiled_filter.cache_clear()
    monkeypatch.setitem(sys.modules, "pyseccomp", None)
    try:
        err = failure("def handler(payload):\n    return 1\n")
    finally:
        compiled_filter.cache_clear()
    assert (err.status, err.code) == (503, "function_sandbox_unavailable")
