#!/usr/bin/env python3
"""tests/tls/test_tls.py - coupond's TLS listener against clients nobody here wrote: Python's ssl
module and `openssl s_client`, plus couponctl --tls. A throwaway CA, server and client
certificates are made with the openssl command line in a temporary directory (no key is ever
committed). Needs COUPOND_BIN and COUPONCTL_BIN; exits non-zero on the first failure."""
import os
import re
import shutil
import signal
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLS 1.1, on purpose

COUPOND = os.environ["COUPOND_BIN"]
COUPONCTL = os.environ["COUPONCTL_BIN"]
START_WAIT_S = 20  # a sanitizer build starts slowly
HANDSHAKE_TIMEOUT_S = 10  # server/tls.h TLS_HANDSHAKE_TIMEOUT
EXCHANGE_WAIT_S = 120  # for a whole pipelined exchange, under a sanitizer on a busy machine
EXCHANGE_CHUNK = 16384  # one TLS record's worth of requests a send
PIPELINED = 20000  # PINGs sent in one go: about 120 KiB of replies, past CONN_OUT_SOFT


def run(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


class Pki:
    """A CA that signs the server's certificates, another that signs client certificates, and a
    stranger CA whose client certificate the server must refuse."""

    def __init__(self, d):
        self.d = d
        self.ca = self.make_ca("ca", "coupond test CA")
        self.client_ca = self.make_ca("client_ca", "coupond test client CA")
        self.other_ca = self.make_ca("other_ca", "a stranger CA")
        san = "subjectAltName=DNS:localhost,IP:127.0.0.1"
        self.srv1 = self.make_cert("srv1", "localhost", "ca", "0x5e1", san)
        self.srv2 = self.make_cert("srv2", "localhost", "ca", "0x5e2", san)
        self.alice = self.make_cert("alice", "alice", "client_ca", "0xa1", None)
        self.mallory = self.make_cert("mallory", "mallory", "other_ca", "0xb1", None)

    def path(self, name):
        return os.path.join(self.d, name)

    def make_ca(self, name, cn):
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.path(name + ".key"), "-out", self.path(name + ".pem"),
            "-days", "2", "-subj", "/CN=" + cn)
        return self.path(name + ".pem")

    def make_cert(self, name, cn, ca, serial, ext):
        key, csr, pem = (self.path(name + s) for s in (".key", ".csr", ".pem"))
        run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        cmd = ["openssl", "x509", "-req", "-in", csr, "-CA", self.path(ca + ".pem"), "-CAkey",
               self.path(ca + ".key"), "-set_serial", serial, "-days", "2", "-out", pem]
        if ext:
            with open(self.path(name + ".ext"), "w") as f:
                f.write(ext + "\n")
            cmd += ["-extfile", self.path(name + ".ext")]
        run(*cmd)
        return pem, key


class Server:
    """A coupond with a plain and a TLS listener on free ports, its log in a file."""

    def __init__(self, d, cert, key, ca=None, tls_only=False):
        self.d = d
        self.log = os.path.join(d, "ops.log")
        self.data = os.path.join(d, "data")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        shutil.copy(cert, self.cert)
        shutil.copy(key, self.key)
        args = [COUPOND, "-d", self.data, "--log", self.log, "--tls-port", "0",
                "--tls-cert", self.cert, "--tls-key", self.key]
        args += ["--tls-only"] if tls_only else ["-p", "0"]
        if ca:
            args += ["--tls-ca", ca]
        self.stderr = open(os.path.join(d, "stderr.log"), "w")
        self.proc = subprocess.Popen(args, stderr=self.stderr)
        deadline = time.time() + START_WAIT_S
        while time.time() < deadline and "op=START" not in self.log_text():
            assert self.proc.poll() is None, "coupond exited at start"
            time.sleep(0.05)
        text = self.log_text()
        plain = re.search(r"op=LISTEN addr=\S+ port=(\d+)", text)
        assert (plain is None) == tls_only, text
        self.port = int(plain.group(1)) if plain else None
        self.tls_port = int(re.search(r"op=LISTEN_TLS addr=\S+ port=(\d+)", text).group(1))
        with open(os.path.join(self.data, "admin.key")) as f:
            self.admin_key = f.read().strip()

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, count=1):
        deadline = time.time() + START_WAIT_S
        while time.time() < deadline:
            if len(re.findall(pattern, self.log_text())) >= count:
                return
            time.sleep(0.05)
        raise AssertionError("the log never showed %r %d times:\n%s" %
                             (pattern, count, self.log_text()[-3000:]))

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc.returncode is not None:  # stopped already, and checked
            return
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.stderr.close()
        with open(os.path.join(self.d, "stderr.log")) as f:
            err = f.read()
        assert rc == 0, "coupond exited %d (a sanitizer report?):\n%s" % (rc, err[-4000:])


def client_ctx(pki, cert=None, maximum=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert:
        ctx.load_cert_chain(*cert)
    if maximum:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that the client itself offers TLS 1.1
    return ctx


class Session:
    """One TLS connection with line reads."""

    def __init__(self, srv, ctx, host="localhost", rcvbuf=None):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.settimeout(10)
        if rcvbuf:  # a small window, so that unread replies back up in the server soon
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.connect(("127.0.0.1", srv.tls_port))
        self.s = ctx.wrap_socket(raw, server_hostname=host)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\n" not in self.buf:
            self.take(self.s.recv(65536))
        return self.next_line()

    def take(self, chunk):
        """Keeps what one recv gave; an empty chunk is the server's EOF."""
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def next_line(self):
        """The first whole line of the buffer (there must be one), without its line end."""
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode()

    def exchange(self, payload, count):
        """Sends `payload` while reading replies, in this one thread, until `count` lines have
        come; returns them."""
        sock = self.s
        sock.setblocking(False)
        out = memoryview(payload)
        lines = []
        deadline = time.time() + EXCHANGE_WAIT_S
        while len(lines) < count:
            assert time.time() < deadline, "%d of %d replies" % (len(lines), count)
            progressed = False
            if out:
                try:
                    out = out[sock.send(out[:EXCHANGE_CHUNK]):]
                    progressed = True
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
            try:
                self.take(sock.recv(65536))
                progressed = True
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            while b"\n" in self.buf and len(lines) < count:
                lines.append(self.next_line())
            if not progressed:
                select.select([sock], [sock] if out else [], [], 1)
        sock.settimeout(10)
        return lines

    def ask(self, request):
        self.send(request + "\r\n")
        return self.line()

    def serial(self):
        return int(self.s.getpeercert()["serialNumber"], 16)

    def close(self):
        self.s.close()


def test_session(srv, pki):
    s = Session(srv, client_ctx(pki))
    assert s.s.version() in ("TLSv1.2", "TLSv1.3"), s.s.version()
    assert s.ask("PING") == "OK PONG"
    assert s.ask("AUTH " + srv.admin_key) == "OK"
    s.send("UPLOAD 2\r\nTLS-1,STANDARD,20,FLAT,2099-12-31,1\r\nTLS-2,STANDARD,10,FLAT,2099-12-31,1\r\n")
    assert s.line() == "OK uploaded=2"
    reply = s.ask("REQUEST alice STANDARD")
    assert reply.startswith("OK code=TLS-"), reply
    s.send("*1\r\n$4\r\nPING\r\n")  # RESP inside TLS too
    assert s.line() == "+PONG"
    s.close()
    srv.wait_log(r"op=TLS version=TLSv1\.[23]")
    ctx = client_ctx(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    s = Session(srv, ctx)
    assert s.s.version() == "TLSv1.2" and s.s.cipher()[0].startswith("ECDHE-"), s.s.cipher()
    assert s.ask("PING") == "OK PONG"
    s.close()
    ctx = client_ctx(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # OpenSSL's default takes it; CBC, not AEAD
    try:
        Session(srv, ctx)
        raise AssertionError("a TLS 1.2 suite that is not AEAD was accepted")
    except ssl.SSLError:
        pass
    print("ok - handshake, PING, AUTH, UPLOAD, REQUEST and RESP over TLS 1.3; TLS 1.2 with ECDHE"
          " only")


def test_pipelined(srv, pki):
    """Replies backed up past CONN_OUT_SOFT: flow control over TLS, nothing lost. One thread
    sends and reads: an SSL object must not be used by two threads at once (its state of the last
    I/O call is shared, so a read beside a write could be taken for the server's EOF)."""
    s = Session(srv, client_ctx(pki))
    lines = s.exchange(b"PING\r\n" * PIPELINED, PIPELINED)
    for i, line in enumerate(lines):
        assert line == "OK PONG", "reply %d: %r" % (i, line)
    s.close()
    print("ok - %d pipelined PINGs over TLS, all answered in order" % PIPELINED)


def test_limits(srv, pki):
    """The plain connection's limits hold inside TLS: an over-long line is answered and skipped,
    and a client that stops reading its replies is cut off (CONN_OUT_STALL, 5 s)."""
    s = Session(srv, client_ctx(pki))
    s.send("PING " + "x" * 5000 + "\r\nPING\r\n")
    reply = s.line()
    assert reply.startswith("ERR TOO_LONG"), reply
    assert s.line() == "OK PONG"
    s.close()
    before = srv.log_text().count("reason=output_stalled")
    s = Session(srv, client_ctx(pki), rcvbuf=4096)
    s.s.settimeout(60)

    def flood():
        try:
            s.send(b"PING\r\n" * 2000000)  # 12 MB: more than the kernel buffers take
        except (OSError, ssl.SSLError):
            pass  # cut off, as it should be

    sender = threading.Thread(target=flood)
    sender.start()
    srv.wait_log(r"reason=output_stalled", before + 1)
    sender.join(timeout=30)
    s.close()
    print("ok - inside TLS: an over-long line answered ERR TOO_LONG, a non-reader cut off")


def test_s_client(srv, pki):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.tls_port,
                        "-CAfile", pki.ca, "-verify_return_error", "-verify_hostname",
                        "localhost", "-quiet"], input="PING\r\nQUIT\r\n", capture_output=True,
                       text=True, timeout=30)
    assert "OK PONG" in p.stdout, p.stdout + p.stderr
    print("ok - openssl s_client: verified handshake and PING")


def test_old_versions_refused(srv, pki):
    try:
        Session(srv, client_ctx(pki, maximum=ssl.TLSVersion.TLSv1_1))
        raise AssertionError("a TLS 1.1 handshake succeeded")
    except ssl.SSLError as e:
        assert "PROTOCOL_VERSION" in str(e).upper(), "refused by the client itself? %s" % e
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.tls_port,
                        "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], input="", text=True,
                       capture_output=True, timeout=30)
    assert "alert protocol version" in p.stderr and "Cipher is (NONE)" in p.stdout, p.stderr
    srv.wait_log(r'op=DROP reason=tls_handshake error="unsupported protocol"', 2)
    print("ok - TLS 1.1 refused (Python and s_client), logged")


def test_plain_client_refused(srv, pki):
    before = srv.log_text().count("reason=tls_handshake")
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=10)
    raw.sendall(b"PING\r\n")
    got = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        got += chunk
    raw.close()
    assert b"PONG" not in got, got
    srv.wait_log(r"reason=tls_handshake error=", before + 1)
    time.sleep(0.2)
    assert srv.log_text().count("reason=tls_handshake") == before + 1, "logged more than once"
    s = Session(srv, client_ctx(pki))  # the server keeps serving, TLS and plain
    assert s.ask("PING") == "OK PONG"
    s.close()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as p:
        p.sendall(b"PING\r\n")
        assert p.recv(100).startswith(b"OK PONG")
    print("ok - a plain-text client on the TLS port is closed, logged once; serving goes on")


def test_handshake_timeout(srv):
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=HANDSHAKE_TIMEOUT_S + 20)
    started = time.time()
    assert raw.recv(100) == b""
    waited = time.time() - started
    raw.close()
    assert HANDSHAKE_TIMEOUT_S - 1 <= waited <= HANDSHAKE_TIMEOUT_S + 10, waited
    srv.wait_log(r"reason=tls_handshake_timeout")
    print("ok - a silent client is closed after the handshake timeout (%.1f s)" % waited)


def test_shutdown_mid_handshake(srv):
    """SIGTERM while a client has not finished its handshake: nothing is owed to it, so the
    server does not wait out its shutdown grace (5 s) for it."""
    before = srv.log_text().count("op=CONNECT")
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=30)
    srv.wait_log(r"op=CONNECT", before + 1)
    started = time.time()
    srv.stop()
    took = time.time() - started
    raw.close()
    assert took < 3, "the shutdown waited %.1f s for a client mid-handshake" % took
    print("ok - SIGTERM with a client mid-handshake: exits at once (%.1f s), exit 0" % took)


def test_reload(srv, pki):
    old = Session(srv, client_ctx(pki))
    assert old.serial() == 0x5E1 and old.ask("PING") == "OK PONG"
    shutil.copy(pki.srv2[0], srv.cert)
    shutil.copy(pki.srv2[1], srv.key)
    srv.hup()
    srv.wait_log(r"op=TLS_RELOAD result=ok serial=05E2")
    new = Session(srv, client_ctx(pki))
    assert new.serial() == 0x5E2, hex(new.serial())
    assert new.ask("PING") == "OK PONG"
    assert old.ask("PING") == "OK PONG", "the session open before the reload broke"
    # A reload that fails keeps the certificate in use and says so once.
    shutil.copy(pki.srv1[1], srv.key)  # srv2's certificate with srv1's key
    srv.hup()
    srv.wait_log(r"op=TLS_RELOAD result=failed reason=.*does not match")
    with open(srv.cert, "w") as f:
        f.write("not a certificate\n")
    srv.hup()
    srv.wait_log(r"op=TLS_RELOAD result=failed reason=\"no certificate", 1)
    shutil.copy(pki.srv2[0], srv.cert)
    shutil.copy(pki.srv2[1], srv.key)
    os.chmod(srv.key, 0o644)  # a key others may read is refused on reload too
    srv.hup()
    srv.wait_log(r"op=TLS_RELOAD result=failed reason=.*has mode 0644", 1)
    time.sleep(0.2)
    assert srv.log_text().count("op=TLS_RELOAD result=failed") == 3
    kept = Session(srv, client_ctx(pki))
    assert kept.serial() == 0x5E2 and kept.ask("PING") == "OK PONG"
    for s in (old, new, kept):
        s.close()
    print("ok - SIGHUP: new connections get the new serial, old sessions go on; bad reloads kept"
          " (a key of mode 0644 among them)")


def test_couponctl(srv, pki):
    key_file = os.path.join(srv.data, "admin.key")
    for host in ("localhost", "127.0.0.1"):
        p = subprocess.run([COUPONCTL, "--tls", "--tls-ca", pki.ca, "-a", host, "-p",
                            str(srv.tls_port), "-k", key_file, "--stats"], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0 and "STAT connections" in p.stdout, (host, p.stdout, p.stderr)
    p = subprocess.run([COUPONCTL, "--tls", "--tls-ca", pki.other_ca, "-p", str(srv.tls_port),
                        "-k", key_file, "--stats"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "certificate verify failed" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([COUPONCTL, "--tls", "--tls-ca", pki.ca, "-a", "127.0.0.2", "-p",
                        str(srv.tls_port), "-k", key_file, "--stats"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 3, (p.returncode, p.stderr)  # the certificate does not name 127.0.0.2
    p = subprocess.run([COUPONCTL, "--tls-ca", pki.ca, "-p", str(srv.tls_port), "-k", key_file,
                        "--stats"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "go with --tls" in p.stderr, (p.returncode, p.stderr)
    p = subprocess.run([COUPONCTL, "--tls", "--tls-ca", os.path.join(srv.d, "nope.pem"), "-p",
                        str(srv.tls_port), "-k", key_file, "--stats"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "cannot read --tls-ca" in p.stderr, (p.returncode, p.stderr)
    print("ok - couponctl --tls --stats; an untrusted CA or a wrong host name is refused (exit 3)")


def test_client_certificates(d, pki):
    srv = Server(d, *pki.srv1, ca=pki.client_ca)
    try:
        s = Session(srv, client_ctx(pki, cert=pki.alice))
        assert s.ask("PING") == "OK PONG"
        s.close()
        srv.wait_log(r"op=TLS version=\S+ client=\S*CN=alice")
        for who, cert in (("no certificate", None), ("a stranger CA's", pki.mallory)):
            try:
                s = Session(srv, client_ctx(pki, cert=cert))
                reply = s.ask("PING")  # TLS 1.3: the refusal comes after the client's Finished
                raise AssertionError("%s was let in: %r" % (who, reply))
            except (ssl.SSLError, EOFError, ConnectionError):
                pass
        srv.wait_log(r"reason=tls_handshake error=", 2)
        p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.tls_port,
                            "-CAfile", pki.ca, "-cert", pki.alice[0], "-key", pki.alice[1],
                            "-quiet"], input="PING\r\nQUIT\r\n", capture_output=True, text=True,
                           timeout=30)
        assert "OK PONG" in p.stdout, p.stdout + p.stderr
        key_file = os.path.join(srv.data, "admin.key")
        ctl = [COUPONCTL, "--tls", "--tls-ca", pki.ca, "-a", "localhost", "-p",
               str(srv.tls_port), "-k", key_file, "--stats"]
        p = subprocess.run(ctl + ["--tls-cert", pki.alice[0], "--tls-key", pki.alice[1]],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "STAT connections" in p.stdout, (p.returncode, p.stderr)
        p = subprocess.run(ctl, capture_output=True, text=True, timeout=60)
        assert p.returncode == 3, (p.returncode, p.stderr)  # no client certificate
    finally:
        srv.stop()
    print("ok - --tls-ca: a client certificate of that CA is let in (Python, s_client, couponctl);"
          " none or another CA's is not")


def expect_one_line(args, code, words):
    """Runs coupond with args: it must exit with code, saying one line that holds words."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code and len(lines) == 1 and words in lines[0], (args, p)


def listening_ports(pid):
    """The TCP ports process pid listens on, from /proc (its socket inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: TCP_LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def test_tls_only(d, pki):
    """--tls-only: the TLS listener serves, and no plain one is opened."""
    srv = Server(d, *pki.srv1, tls_only=True)
    try:
        s = Session(srv, client_ctx(pki))
        assert s.ask("PING") == "OK PONG"
        assert s.ask("AUTH " + srv.admin_key) == "OK"
        s.close()
        ports = listening_ports(srv.proc.pid)
        assert ports == [srv.tls_port], (ports, srv.tls_port)
    finally:
        srv.stop()
    print("ok - --tls-only: TLS serves, and it is the only port the process listens on")


def test_bad_flags(d, pki):
    base = [COUPOND, "-p", "0", "-d", os.path.join(d, "bad"), "--tls-port", "0"]
    cases = [
        (base + ["--tls-cert", pki.srv1[0]], 2, "needs --tls-cert FILE and --tls-key FILE"),
        ([COUPOND, "-d", os.path.join(d, "bad"), "--tls-cert", pki.srv1[0]], 2, "go with"),
        (base + ["--tls-cert", os.path.join(d, "nope.pem"), "--tls-key", pki.srv1[1]], 1,
         "cannot read --tls-cert"),
        (base + ["--tls-cert", pki.srv1[0], "--tls-key", pki.srv2[1]], 1, "does not match"),
        (base + ["--tls-cert", pki.srv1[1], "--tls-key", pki.srv1[1]], 1, "no certificate"),
        (base + ["--tls-cert", pki.srv1[0], "--tls-key", pki.srv1[1], "--tls-ca",
                 os.path.join(d, "nope.pem")], 1, "cannot read --tls-ca"),
    ]
    for args, code, words in cases:
        expect_one_line(args, code, words)
    # A private key others may read is refused, as PostgreSQL refuses its ssl_key_file; root's
    # key may be readable by its group (Debian's ssl-cert), this user's may not.
    key = os.path.join(d, "perm.key")
    shutil.copyfile(pki.srv1[1], key)
    args = base + ["--tls-cert", pki.srv1[0], "--tls-key", key]
    refused = (0o644, 0o604, 0o602) if os.geteuid() == 0 else (0o644, 0o640, 0o660)
    for mode in refused:
        os.chmod(key, mode)
        expect_one_line(args, 1, "has mode %04o: others may read it" % mode)
    print("ok - bad TLS flags: usage errors exit 2, unusable files exit 1, one line each")


def main():
    d = tempfile.mkdtemp(prefix="coupond-tls.")
    try:
        pki = Pki(os.path.join(d))
        test_bad_flags(d, pki)
        srv_dir = os.path.join(d, "srv")
        os.mkdir(srv_dir)
        if os.geteuid() == 0:  # root's key may be readable by its group (Debian's ssl-cert)
            os.chmod(pki.srv1[1], 0o640)
        srv = Server(srv_dir, *pki.srv1)
        try:
            test_session(srv, pki)
            test_pipelined(srv, pki)
            test_limits(srv, pki)
            test_s_client(srv, pki)
            test_old_versions_refused(srv, pki)
            test_plain_client_refused(srv, pki)
            test_reload(srv, pki)
            test_handshake_timeout(srv)
            test_couponctl(srv, pki)
            test_shutdown_mid_handshake(srv)
        finally:
            srv.stop()
        only_dir = os.path.join(d, "only")
        os.mkdir(only_dir)
        test_tls_only(only_dir, pki)
        ca_dir = os.path.join(d, "ca")
        os.mkdir(ca_dir)
        test_client_certificates(ca_dir, pki)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("all TLS tests passed")


if __name__ == "__main__":
    main()
