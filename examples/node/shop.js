// examples/node/shop.js - a shop backend's use of coupond through ioredis (npm install ioredis):
// give a customer a coupon for an order, check it at checkout, hold it while the payment runs,
// redeem it, and act on each error coupond can answer.
//
//   COUPOND_HOST=127.0.0.1 COUPOND_PORT=7070 node shop.js
//   COUPOND_KEY=$(cat coupond-data/admin.key) node shop.js   # also loads demo coupons
//
// Every write carries a request id made from the order number (id=...). ioredis sends a command
// again by itself when its connection broke before the reply; with the id, coupond does it once
// and answers the retry with the first outcome (replayed=1), so no order gets two coupons.
"use strict";
const Redis = require("ioredis");

// What the shop does with each error coupond answers (coupond-protocol(7), ERRORS).
const ACTIONS = {
  NO_COUPONS: "sold out: tell the customer there is no coupon left",
  INVALID: "not this customer's coupon (or no such code): refuse it",
  EXPIRED: "the coupon expired: refuse it",
  EXHAUSTED: "no uses left: refuse it",
  UNKNOWN_HOLD: "the hold ended (timed out, or used): validate and hold again",
  BAD_HOLD: "not a hold id we were given: a bug in the shop",
  UNKNOWN_REDEMPTION: "nothing to undo: already undone",
  ID_CONFLICT: "this order id was used for another request: a bug in the shop",
  BUSY: "coupond is busy: retry in a moment",
  UNAVAILABLE: "coupond cannot reach its store: retry with the same id",
  INTERNAL: "coupond failed, nothing changed: retry later",
  DENIED: "this connection may not do that: check the key",
  BAD_REQUEST: "a malformed request: a bug in the shop",
};

class CouponError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
    this.action = ACTIONS[code] || "unexpected: log it";
  }
}

// A reply's key=value fields: ioredis gives them as a flat array [key, value, ...].
function fields(reply) {
  if (!Array.isArray(reply)) return reply;
  const o = {};
  for (let i = 0; i < reply.length; i += 2) o[reply[i]] = reply[i + 1];
  return o;
}

class Coupons {
  constructor(host, port) {
    this.r = new Redis({ host, port });
  }
  async call(...args) {
    try {
      return fields(await this.r.call(...args));
    } catch (e) {
      if (e.name !== "ReplyError") throw e;
      const sp = e.message.indexOf(" ");
      throw new CouponError(e.message.slice(0, sp), e.message.slice(sp + 1));
    }
  }
  give(user, order) { // asking again for the same order gives the same coupon
    return this.call("REQUEST", user, "FREE", `id=give-${order}`);
  }
  check(user, code) {
    return this.call("VALIDATE", user, code);
  }
  async hold(user, code, seconds = 900) {
    return (await this.call("HOLD", user, code, String(seconds))).hold;
  }
  redeem(user, code, hold, order) {
    return this.call("REDEEM", user, code, `hold=${hold}`, `id=pay-${order}`);
  }
  release(hold) {
    return this.call("RELEASE", hold);
  }
  async loadDemo(key) {
    await this.call("AUTH", key);
    const recs = [0, 1, 2].map((i) => `DEMO-${i},FREE,10,FLAT,2099-12-31,1`);
    return this.call("UPLOAD", "id=demo-load", ...recs);
  }
  close() {
    this.r.disconnect();
  }
}

async function step(what, promise) {
  try {
    const out = await promise;
    console.log(`${what}: OK${typeof out === "string" ? " " + out : ""}`);
    return out;
  } catch (e) {
    if (!(e instanceof CouponError)) throw e;
    console.log(`${what}: ${e.code} -> ${e.action}`);
    return e;
  }
}

async function main() {
  const shop = new Coupons(process.env.COUPOND_HOST || "127.0.0.1", Number(process.env.COUPOND_PORT || 7070));
  try {
    if (process.env.COUPOND_KEY) await step("load demo coupons", shop.loadDemo(process.env.COUPOND_KEY));
    const c = await step("give alice a coupon for order 1001", shop.give("alice", "1001"));
    if (c instanceof CouponError) return 1;
    const again = await shop.give("alice", "1001");
    console.log(`the same order again: ${again.code} (replayed=${again.replayed || 0})`);
    await step(`check ${c.code} for alice`, shop.check("alice", c.code));
    const hold = await step(`hold ${c.code} while alice pays`, shop.hold("alice", c.code, 300));
    const r = await step("redeem it with the hold", shop.redeem("alice", c.code, hold, "1001"));
    console.log(`  uses now ${r.uses} of ${r.max_uses}, redemption ${r.redemption}`);
    const errors = [
      await step(`check ${c.code} for bob`, shop.check("bob", c.code)),
      await step(`hold ${c.code} again`, shop.hold("alice", c.code)),
      await step("release the used hold", shop.release(hold)),
    ];
    for (let i = 0; i < 3; i++) await step(`give dave a coupon for order 20${i}`, shop.give("dave", `20${i}`));
    const got = errors.map((e) => (e instanceof CouponError ? e.code : "OK"));
    if (got.join() !== "INVALID,EXHAUSTED,UNKNOWN_HOLD") {
      console.error(`expected INVALID, EXHAUSTED, UNKNOWN_HOLD; got ${got.join(", ")}`);
      return 1;
    }
    return 0;
  } finally {
    shop.close();
  }
}

main().then((rc) => process.exit(rc), (e) => {
  console.error(e);
  process.exit(1);
});
