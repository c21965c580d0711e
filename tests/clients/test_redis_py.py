"""tests/clients/test_redis_py.py - coupond through redis-py, a Redis client nobody here wrote
(Debian's python3-redis): execute_command for every verb of coupond-protocol(7), in RESP2, and
in RESP3 when the installed redis-py speaks it (5.0 and later). Run by with_server.sh, which
gives COUPOND_PORT and COUPOND_KEY; prints one line per check and exits 1 on the first failure.
"""
import os
import sys
import time

import redis

PORT = int(os.environ["COUPOND_PORT"])
KEY = os.environ["COUPOND_KEY"]
OPLOG = os.environ["COUPOND_OPLOG"]
CHECKS = [0]


def ok(what):
    CHECKS[0] += 1
    print(f"ok {CHECKS[0]} - {what}")


def fields(v):
    """A status line's fields: a map in RESP3, a flat array [key, value, ...] in RESP2."""
    if isinstance(v, dict):
        return {k.decode() if isinstance(k, bytes) else k: v[k] for k in v}
    assert isinstance(v, list) and len(v) % 2 == 0, v
    return {v[i].decode(): v[i + 1] for i in range(0, len(v), 2)}


def error_of(fn, *args):
    """The error code of a command that must fail (ResponseError's first word)."""
    try:
        fn(*args)
    except redis.ResponseError as e:
        return str(e).split(" ", 1)[0]
    raise AssertionError(f"{args} did not fail")


def run(proto):
    kw = {"protocol": proto} if proto == 3 else {}
    svc = redis.Redis(host="127.0.0.1", port=PORT, **kw)
    adm = redis.Redis(host="127.0.0.1", port=PORT, **kw)
    x = svc.execute_command
    a = adm.execute_command
    tag = f"RESP{proto}"
    p = f"P{proto}-"

    assert svc.ping() is True
    assert x("PING") in (True, b"PONG")
    ok(f"{tag} PING")
    assert len(x("HELP")) > 20
    ok(f"{tag} HELP: one line per verb, then OK")
    assert error_of(x, "STATS") == "DENIED"
    assert a("AUTH", KEY) in (True, b"OK")
    ok(f"{tag} AUTH, and STATS denied before it")

    recs = [f"{p}F{i},FREE,10,FLAT,2099-12-31,3" for i in range(4)]
    recs += [f"{p}S0,STANDARD,12.5,PERCENT,2099-12-31,1", f"{p}M0,MEGADEAL,50,PERCENT,2099-12-31,1"]
    assert fields(a("UPLOAD", f"id={p}up", *recs)) == {"uploaded": 6}
    assert fields(a("UPLOAD", f"id={p}up", *recs)) == {"uploaded": 6, "replayed": b"1"}
    assert error_of(a, "UPLOAD", f"{p}F0,FREE,1,FLAT,2099-12-31,1", "junk") == "BAD_BATCH"
    ok(f"{tag} UPLOAD with an id, its replay, a rejected batch")

    c = fields(x("REQUEST", "alice", "FREE", f"id={p}r1"))
    assert c["code"] == f"{p}F0".encode() and c["uses"] == 0 and c["max_uses"] == 3, c
    again = fields(x("REQUEST", "alice", "FREE", f"id={p}r1"))
    assert again["code"] == c["code"] and again["replayed"] == b"1"
    assert error_of(x, "REQUEST", "bob", "FREE", f"id={p}r1") == "ID_CONFLICT"
    ok(f"{tag} REQUEST with an id, its replay, ID_CONFLICT")
    code = c["code"].decode()

    assert fields(x("VALIDATE", "alice", code))["code"] == c["code"]
    assert error_of(x, "VALIDATE", "bob", code) == "INVALID"
    ok(f"{tag} VALIDATE, and INVALID for another user")

    h = fields(x("HOLD", "alice", code, "60"))
    assert h["hold"] and h["code"] == c["code"]
    assert fields(x("RELEASE", h["hold"].decode())) == {"released": b"1"}
    assert error_of(x, "RELEASE", h["hold"].decode()) == "UNKNOWN_HOLD"
    assert error_of(x, "RELEASE", "forged") == "BAD_HOLD"
    ok(f"{tag} HOLD, RELEASE, UNKNOWN_HOLD, BAD_HOLD")

    h = fields(x("HOLD", "alice", code))
    r = fields(x("REDEEM", "alice", code, f"hold={h['hold'].decode()}"))
    assert r["uses"] == 1 and r["redemption"] >= 1
    r2 = fields(x("REDEEM", "alice", code))
    assert r2["uses"] == 2
    u = fields(x("UNREDEEM", "alice", str(r["redemption"])))
    assert u["uses"] == 1
    assert error_of(x, "UNREDEEM", "alice", str(r["redemption"])) == "UNKNOWN_REDEMPTION"
    ok(f"{tag} REDEEM with a hold, REDEEM, UNREDEEM, UNKNOWN_REDEMPTION")

    lst = x("COUPONS", "alice")
    assert isinstance(lst, list) and len(lst) == 2, lst
    assert fields(lst[0])["code"] == c["code"] and fields(lst[-1]) == {"count": 1}
    assert [fields(v) for v in x("COUPONS", "nobody")] == [{"count": 0}]
    ok(f"{tag} COUPONS: the coupons, then the count")

    cp = a("COUPON", code)
    assert len(cp) == 4 and fields(cp[0])["user"] == b"alice", cp
    assert fields(cp[1]).get("undone") is not None and "undone" not in fields(cp[2])
    assert cp[3] in (b"OK", "OK", True), cp[3]
    assert error_of(a, "COUPON", "NOPE") == "INVALID"
    ok(f"{tag} COUPON: the coupon, its redemptions (one undone), OK")

    g = a("GENERATE", "3", "STANDARD", "5", "FLAT", "2099-12-31", "1", f"prefix={p}G")
    assert len(g) == 4 and all(v.startswith(f"{p}G".upper().encode()) for v in g[:3])
    assert fields(g[3]) == {"generated": 3}
    ok(f"{tag} GENERATE: the codes, then generated=3")

    e = a("EXPORT", "COUPONS", "STANDARD")
    assert fields(e[-1])["count"] == len(e) - 1 and len(e) >= 5, e
    hist = a("EXPORT", "HISTORY")
    assert fields(hist[-1])["count"] == len(hist) - 1 >= 2
    ok(f"{tag} EXPORT COUPONS of a type and EXPORT HISTORY, counted")

    t = fields(x("REQUEST", "carol", "MEGADEAL"))
    assert t["status"] == b"queued" and t["position"] >= 1
    w = fields(x("WAIT", t["task"].decode()))
    assert w["status"] == b"granted" and w["code"] == f"{p}M0".upper().encode()
    assert fields(x("STATUS", t["task"].decode()))["status"] == b"granted"
    assert error_of(x, "STATUS", "AAAA") == "BAD_TASK"
    assert error_of(x, "REQUEST", "dave", "MEGADEAL") == "NO_COUPONS"
    ok(f"{tag} MEGADEAL: REQUEST, WAIT, STATUS, BAD_TASK, NO_COUPONS")

    st = a("STATS")
    stats = {v[0].decode(): v[1] for v in st[:-1]}
    assert stats["assigned.FREE"] >= 1 and stats["redeemed.FREE"] >= 2
    assert fields(a("PURGE")) == {"purged": 0}
    ok(f"{tag} STATS and PURGE")

    assert error_of(x, "FROB") == "UNKNOWN_COMMAND"
    assert error_of(x, "REQUEST") == "BAD_REQUEST"
    ok(f"{tag} UNKNOWN_COMMAND and BAD_REQUEST")

    info = svc.info()
    assert info["redis_version"] and "coupond_version" in info and info["role"] == "master"
    assert svc.echo("a b c") == b"a b c"
    assert svc.client_setname("py-test") is True and svc.client_getname() in ("py-test",
                                                                              b"py-test")
    assert svc.client_id() >= 1
    assert svc.config_get("appendonly") == {"appendonly": "yes"}
    assert svc.execute_command("SELECT", "0") in (True, b"OK")
    ok(f"{tag} INFO, ECHO, CLIENT SETNAME/GETNAME/ID, CONFIG GET, SELECT 0")

    # redis-py reads QUIT's reply as "is it +OK": coupond answers +BYE (OK BYE), so False.
    assert x("QUIT") in (False, b"BYE")
    ok(f"{tag} QUIT")
    adm.close()


def main():
    print(f"redis-py {redis.__version__}")
    run(2)
    major = int(redis.__version__.split(".")[0])
    if major >= 5:
        run(3)
    else:
        print(f"# RESP3 skipped: redis-py {redis.__version__} speaks RESP2 only (RESP3 from 5.0)")
    # What redis-py sent, from the operation log: verbs (and subcommands) in order, once each.
    time.sleep(0.3)
    seen = []
    for line in open(OPLOG):
        ops = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if "conn" in ops and ops.get("op") not in ("CONNECT", "CLOSE"):
            verb = ops["op"] + (" " + ops["sub"] if "sub" in ops else "")
            if verb not in seen:
                seen.append(verb)
    print("# redis-py sent: " + ", ".join(seen))
    print(f"{CHECKS[0]} passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError:
        import traceback

        traceback.print_exc()
        print(f"{CHECKS[0]} passed, 1 failed")
        sys.exit(1)
