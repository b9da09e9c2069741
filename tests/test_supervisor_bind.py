"""Issue 12: `make run` (development config) listens on loopback unless HOST says otherwise."""

from app.supervisor import web_bind


def test_make_run_binds_loopback_by_default():
    assert web_bind({}) == "127.0.0.1:8000"
    assert web_bind({"PORT": "9001"}) == "127.0.0.1:9001"
    assert web_bind({"HOST": "0.0.0.0", "PORT": "9001"}) == "0.0.0.0:9001"
