#!/usr/bin/env python3
"""examples/python/shop.py - a shop backend's use of coupond through redis-py (Debian's
python3-redis, or `pip install redis`): give a customer a coupon for an order, check it at
checkout, hold it while the payment runs, redeem it, and act on each error coupond can answer.

    COUPOND_HOST=127.0.0.1 COUPOND_PORT=7070 python3 shop.py
    COUPOND_KEY=$(cat coupond-data/admin.key) python3 shop.py   # also loads demo coupons

Every write carries a request id made from the order number (id=...): when the connection
breaks before the reply, sending the same command again is safe. coupond does it once and
answers the retry with the first outcome (replayed=1).
"""
import os
import sys

import redis

# What the shop does with each error coupond answers (coupond-protocol(7), ERRORS).
ACTIONS = {
    "NO_COUPONS": "sold out: tell the customer there is no coupon left",
    "INVALID": "not this customer's coupon (or no such code): refuse it",
    "EXPIRED": "the coupon expired: refuse it",
    "EXHAUSTED": "no uses left: refuse it",
    "UNKNOWN_HOLD": "the hold ended (timed out, or used): validate and hold again",
    "BAD_HOLD": "not a hold id we were given: a bug in the shop",
    "UNKNOWN_REDEMPTION": "nothing to undo: already undone",
    "ID_CONFLICT": "this order id was used for another request: a bug in the shop",
    "BUSY": "coupond is busy: retry in a moment",
    "UNAVAILABLE": "coupond cannot reach its store: retry with the same id",
    "INTERNAL": "coupond failed, nothing changed: retry later",
    "DENIED": "this connection may not do that: check the key",
    "BAD_REQUEST": "a malformed request: a bug in the shop",
}


class CouponError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.action = ACTIONS.get(code, "unexpected: log it")


class Coupons:
    """The shop's side of coupond: one method per step of a checkout."""

    def __init__(self, host, port):
        self.r = redis.Redis(host=host, port=port, socket_timeout=10, retry_on_timeout=True)

    def _call(self, *args):
        try:
            reply = self.r.execute_command(*args)
        except redis.ResponseError as e:
            code, _, message = str(e).partition(" ")
            raise CouponError(code, message) from None
        return self._fields(reply)

    @staticmethod
    def _fields(reply):
        """A reply's key=value fields (RESP2 gives them as a flat array)."""
        if not isinstance(reply, list):
            return reply
        return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}

    def give(self, user, order):
        """A FREE coupon for the order; asking again for the same order gives the same one."""
        return self._call("REQUEST", user, "FREE", f"id=give-{order}")

    def check(self, user, code):
        return self._call("VALIDATE", user, code)

    def hold(self, user, code, seconds=900):
        return self._call("HOLD", user, code, str(seconds))["hold"].decode()

    def redeem(self, user, code, hold, order):
        return self._call("REDEEM", user, code, f"hold={hold}", f"id=pay-{order}")

    def release(self, hold):
        return self._call("RELEASE", hold)

    def load_demo(self, key):
        self._call("AUTH", key)
        recs = [f"DEMO-{i},FREE,10,FLAT,2099-12-31,1" for i in range(3)]
        return self._call("UPLOAD", "id=demo-load", *recs)


def step(what, fn, *args):
    try:
        out = fn(*args)
        print(f"{what}: OK {out if not isinstance(out, dict) else ''}".rstrip())
        return out
    except CouponError as e:
        print(f"{what}: {e.code} -> {e.action}")
        return e


def main():
    shop = Coupons(os.environ.get("COUPOND_HOST", "127.0.0.1"), int(os.environ.get("COUPOND_PORT", "7070")))
    if os.environ.get("COUPOND_KEY"):
        step("load demo coupons", shop.load_demo, os.environ["COUPOND_KEY"])
    c = step("give alice a coupon for order 1001", shop.give, "alice", "1001")
    if isinstance(c, CouponError):
        return 1
    code = c["code"].decode()
    again = shop.give("alice", "1001")
    print(f"the same order again: {again['code'].decode()} (replayed={again.get('replayed', b'0').decode()})")
    step(f"check {code} for alice", shop.check, "alice", code)
    hold = step(f"hold {code} while alice pays", shop.hold, "alice", code, 300)
    r = step("redeem it with the hold", shop.redeem, "alice", code, hold, "1001")
    print(f"  uses now {r['uses']} of {r['max_uses']}, redemption {r['redemption']}")
    errors = [
        step(f"check {code} for bob", shop.check, "bob", code),
        step(f"hold {code} again", shop.hold, "alice", code),
        step("release the used hold", shop.release, hold),
    ]
    for i in range(3):
        step(f"give dave a coupon for order 20{i}", shop.give, "dave", f"20{i}")
    want = ["INVALID", "EXHAUSTED", "UNKNOWN_HOLD"]
    got = [e.code if isinstance(e, CouponError) else "OK" for e in errors]
    if got != want:
        print(f"expected {want}, got {got}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
