"""bench/admission.py reads the web process's own time of each refusal from its Server-Timing header."""

from bench.admission import server_total_ms


def test_the_server_side_time_is_the_total_of_server_timing():
    assert server_total_ms("auth;dur=0.310, ratelimit;dur=0.120, total;dur=1.254") == 1.254
    assert server_total_ms("total;dur=7") == 7.0
    # No header, no total, or a mangled one: no figure rather than a wrong one.
    assert server_total_ms(None) is None
    assert server_total_ms("auth;dur=0.3") is None
    assert server_total_ms("total;dur=abc") is None


def test_the_server_side_cpu_is_the_cpu_part():
    header = "auth;dur=0.310, ratelimit;dur=0.120, cpu;dur=0.950, total;dur=1.254"
    assert server_total_ms(header, "cpu") == 0.95
    assert server_total_ms("total;dur=7", "cpu") is None
