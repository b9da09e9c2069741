"""The jail has no network: a port the worker itself reaches is unreachable from a handler, and only `lo` exists."""

from __future__ import annotations

import socket
import threading

import psutil
import pytest

from tests.sandbox.conftest import call


class Listener:
    """A TCP server of the test's own, counting the connections it accepts, so 'unreachable' cannot mean 'closed'."""

    def __init__(self, host: str) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def reachable_from_here(self, host: str) -> bool:
        before = self.accepted
        with socket.create_connection((host, self.port), timeout=2):
            pass
        for _ in range(50):
            if self.accepted > before:
                return True
            self._stop.wait(0.02)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.server.close()


@pytest.fixture()
def listener():
    server = Listener("0.0.0.0")  # on every address of the host, so each of them can be tried
    yield server
    server.close()


def host_ipv4_addresses() -> list[str]:
    return sorted(
        {
            address.address
            for addresses in psutil.net_if_addrs().values()
            for address in addresses
            if address.family == socket.AF_INET
        }
    )


TRY_CONNECT = """
import socket

def handler(payload):
    outcomes = {}
    for host in payload["hosts"]:
        sock = socket.socket()
        sock.settimeout(1)
        try:
            sock.connect((host, payload["port"]))
            outcomes[host] = "connected"
        except OSError as exc:
            outcomes[host] = type(exc).__name__
        finally:
            sock.close()
    return outcomes
"""


def test_a_port_the_worker_reaches_on_loopback_is_unreachable_from_the_jail(listener):
    assert listener.reachable_from_here("127.0.0.1")
    accepted_before = listener.accepted
    outcomes = call(TRY_CONNECT, {"hosts": ["127.0.0.1"], "port": listener.port}, timeout_s=5)
    # Refused: the jail's loopback is its own, and nothing listens there.
    assert outcomes == {"127.0.0.1": "ConnectionRefusedError"}, outcomes
    assert listener.accepted == accepted_before


def test_no_address_of_the_host_is_reachable_from_the_jail(listener):
    hosts = host_ipv4_addresses()
    assert len(hosts) >= 2, hosts  # loopback and at least one interface of the host
    for host in hosts:
        assert listener.reachable_from_here(host), host
    accepted_before = listener.accepted
    outcomes = call(TRY_CONNECT, {"hosts": hosts, "port": listener.port}, timeout_s=5 + len(hosts))
    assert set(outcomes) == set(hosts)
    assert "connected" not in outcomes.values(), outcomes
    assert listener.accepted == accepted_before


def test_udp_to_a_port_the_worker_reaches_never_arrives():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(1)
    port = receiver.getsockname()[1]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"from the worker", ("127.0.0.1", port))
        assert receiver.recvfrom(100)[0] == b"from the worker"
        source = """
            import socket

            def handler(payload):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    for _ in range(5):
                        sock.sendto(b"from the jail", ("127.0.0.1", payload))
                return "sent"
        """
        assert call(source, port) == "sent"  # sent on the jail's own loopback, where nobody listens
        with pytest.raises(TimeoutError):
            receiver.recvfrom(100)
    finally:
        receiver.close()


def test_the_jail_has_only_a_loopback_interface():
    host_interfaces = set(psutil.net_if_addrs())
    assert host_interfaces - {"lo"}, host_interfaces  # the worker itself has more than loopback
    source = """
        import os, socket

        def handler(payload):
            with open("/proc/net/dev") as handle:
                dev = [line.split(":")[0].strip() for line in handle.read().splitlines()[2:]]
            with open("/proc/net/route") as handle:
                routes = handle.read().splitlines()[1:]
            return {
                "if_nameindex": [name for _, name in socket.if_nameindex()],
                "proc_net_dev": dev,
                "routes": routes,
                "sys_class_net": os.path.exists("/sys/class/net"),
                "resolv_conf": os.path.exists("/etc/resolv.conf"),
            }
    """
    seen = call(source)
    assert seen == {
        "if_nameindex": ["lo"],
        "proc_net_dev": ["lo"],
        "routes": [],
        "sys_class_net": False,
        "resolv_conf": False,
    }, seen
