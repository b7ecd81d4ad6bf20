"""What a small loopback send costs the sender, by how long its reader has been idle.

    python -m tests.perf.wakeup [sends per gap, 2000 by default]

A reader process blocks in ``recv`` on a TCP connection; the sender spins for a gap,
then times one 300-byte ``send``. With no gap the reader is still running; the longer
the gap, the deeper it sleeps and the more the sender pays to wake it. This is why
`gateway/turns.py` writes a busy turn's answers together.
"""
import os
import socket
import sys
import time

GAPS_US = (0, 10, 30, 60, 100, 200, 500, 2000)


def _reader(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while sock.recv(65536):
            pass
    os._exit(0)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main(sends: int) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        pid = os.fork()
        if pid == 0:
            _reader(server.getsockname()[1])
        conn, _ = server.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        message = b"x" * 300
        print(f"reader idle µs   send µs (mean of {sends} sends)")
        for gap in GAPS_US:
            total = 0.0
            for _ in range(sends):
                _spin(gap / 1e6)
                started = time.perf_counter()
                conn.sendall(message)
                total += time.perf_counter() - started
            print(f"{gap:>14} {total / sends * 1e6:>9.1f}", flush=True)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
