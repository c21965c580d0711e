// tests/clients/test_ioredis.js - coupond through ioredis (npm, the version tests/CMakeLists.txt
// pins), a Redis client nobody here wrote, with its default settings: it connects with HELLO 3,
// CLIENT SETINFO and INFO, and re-sends the commands a lost connection left unanswered.
//   1. `call` for every verb of coupond-protocol(7), replies read in RESP3 (ioredis's legacy
//      mapping turns maps into flat arrays);
//   2. through a proxy that swallows one REQUEST's reply and cuts the connection: ioredis
//      reconnects and sends the REQUEST again; with id= the second is a replay (`replayed`),
//      and STATS assigned grows by one; without an id it grows by two.
// Run by with_server.sh (COUPOND_PORT, COUPOND_KEY, COUPOND_OPLOG). Exit status 1 on a failure.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const Redis = require("ioredis");

const PORT = Number(process.env.COUPOND_PORT);
const KEY = process.env.COUPOND_KEY;
const OPLOG = process.env.COUPOND_OPLOG;
let checks = 0;

function ok(what) {
  checks++;
  console.log(`ok ${checks} - ${what}`);
}

// A status line's fields: ioredis gives RESP3 maps as flat arrays [key, value, ...].
function fields(v) {
  assert.ok(Array.isArray(v) && v.length % 2 === 0, `not a flat map: ${JSON.stringify(v)}`);
  const o = {};
  for (let i = 0; i < v.length; i += 2) o[v[i]] = v[i + 1];
  return o;
}

async function errorOf(p) {
  try {
    await p;
  } catch (e) {
    return e.message.split(" ")[0];
  }
  throw new Error("did not fail");
}

function client(port) {
  return new Redis({ host: "127.0.0.1", port, lazyConnect: true });
}

async function stat(r, name) {
  const st = await r.call("STATS");
  const row = st.find((v) => Array.isArray(v) && v[0] === name);
  assert.ok(row, `no ${name} in STATS`);
  return row[1];
}

async function everyVerb() {
  const r = client(PORT);
  await r.connect();
  const c = r.call.bind(r);
  assert.equal(await c("PING"), "PONG");
  assert.ok((await c("HELP")).length > 20);
  assert.equal(await errorOf(c("STATS")), "DENIED");
  assert.equal(await c("AUTH", KEY), "OK");
  ok("PING, HELP, AUTH, DENIED before it");

  const recs = [];
  for (let i = 0; i < 4; i++) recs.push(`N-F${i},FREE,10,FLAT,2099-12-31,3`);
  recs.push("N-M0,MEGADEAL,50,PERCENT,2099-12-31,1");
  for (let i = 0; i < 4; i++) recs.push(`N-P${i},FREE,1,FLAT,2099-12-31,1`);
  assert.deepEqual(fields(await c("UPLOAD", "id=n-up", ...recs)), { uploaded: 9 });
  assert.equal(await errorOf(c("UPLOAD", "junk")), "BAD_BATCH");
  ok("UPLOAD as arguments, BAD_BATCH");

  const cp = fields(await c("REQUEST", "alice", "FREE", "id=n-r1"));
  assert.equal(cp.code, "N-F0");
  assert.equal(cp.uses, 0);
  assert.equal(fields(await c("REQUEST", "alice", "FREE", "id=n-r1")).replayed, "1");
  assert.equal(fields(await c("VALIDATE", "alice", "N-F0")).code, "N-F0");
  assert.equal(await errorOf(c("VALIDATE", "bob", "N-F0")), "INVALID");
  ok("REQUEST with an id and its replay, VALIDATE, INVALID");

  const h = fields(await c("HOLD", "alice", "N-F0", "30"));
  assert.deepEqual(fields(await c("RELEASE", h.hold)), { released: "1" });
  const h2 = fields(await c("HOLD", "alice", "N-F0"));
  const rd = fields(await c("REDEEM", "alice", "N-F0", `hold=${h2.hold}`));
  assert.equal(rd.uses, 1);
  assert.equal(fields(await c("UNREDEEM", "alice", String(rd.redemption))).uses, 0);
  assert.equal(await errorOf(c("UNREDEEM", "alice", String(rd.redemption))), "UNKNOWN_REDEMPTION");
  ok("HOLD, RELEASE, REDEEM with the hold, UNREDEEM");

  const list = await c("COUPONS", "alice");
  assert.equal(list.length, 2);
  assert.deepEqual(fields(list[1]), { count: 1 });
  const one = await c("COUPON", "N-F0");
  assert.equal(fields(one[0]).user, "alice");
  assert.equal(one[one.length - 1], "OK");
  ok("COUPONS, COUPON");

  const g = await c("GENERATE", "2", "FREE", "1", "FLAT", "2099-12-31", "1");
  assert.deepEqual(fields(g[2]), { generated: 2 });
  const ex = await c("EXPORT", "COUPONS");
  assert.equal(fields(ex[ex.length - 1]).count, ex.length - 1);
  const hi = await c("EXPORT", "HISTORY");
  assert.equal(fields(hi[hi.length - 1]).count, hi.length - 1);
  ok("GENERATE, EXPORT COUPONS, EXPORT HISTORY");

  const t = fields(await c("REQUEST", "carol", "MEGADEAL"));
  assert.equal(t.status, "queued");
  assert.equal(fields(await c("WAIT", t.task)).status, "granted");
  assert.equal(fields(await c("STATUS", t.task)).code, "N-M0");
  assert.equal(await errorOf(c("STATUS", "nope")), "BAD_TASK");
  ok("MEGADEAL: REQUEST, WAIT, STATUS");

  assert.ok((await stat(r, "assigned.FREE")) >= 1);
  assert.deepEqual(fields(await c("PURGE")), { purged: 0 });
  assert.equal(await errorOf(c("FROB")), "UNKNOWN_COMMAND");
  assert.equal(await c("QUIT"), "BYE");
  ok("STATS, PURGE, UNKNOWN_COMMAND, QUIT");
  r.disconnect();
}

// A TCP proxy to coupond that, once armed, swallows the next reply bytes of the connection that
// sent `marker` and cuts that connection (both sides). Only once.
function lossyProxy(marker) {
  const state = { armed: false, dropped: false, conns: 0 };
  const server = net.createServer((down) => {
    state.conns++;
    const up = net.connect(PORT, "127.0.0.1");
    let watching = false;
    down.on("data", (d) => {
      if (!state.dropped && d.includes(marker)) watching = true;
      up.write(d);
    });
    up.on("data", (d) => {
      if (watching && !state.dropped) {
        state.dropped = true;
        up.destroy();
        down.destroy();
        return;
      }
      down.write(d);
    });
    const end = () => {
      up.destroy();
      down.destroy();
    };
    up.on("error", end);
    down.on("error", end);
    up.on("close", end);
    down.on("close", end);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, state, port: server.address().port }))
  );
}

async function lostReply(withId) {
  const admin = client(PORT);
  await admin.connect();
  await admin.call("AUTH", KEY);
  const before = await stat(admin, "assigned.FREE");
  const tag = withId ? "id=lost-1" : "nobody-lost";
  const proxy = await lossyProxy(tag);
  const r = client(proxy.port);
  await r.connect();
  const args = withId ? ["REQUEST", "lucy", "FREE", tag] : ["REQUEST", tag, "FREE"];
  const reply = fields(await r.call(...args));
  assert.ok(proxy.state.dropped, "the proxy dropped no reply");
  assert.equal(proxy.state.conns, 2, "ioredis did not reconnect once");
  const after = await stat(admin, "assigned.FREE");
  if (withId) {
    assert.equal(reply.replayed, "1", `the resent REQUEST was not replayed: ${JSON.stringify(reply)}`);
    assert.equal(after - before, 1, "a resent REQUEST with an id assigned a second coupon");
    ok("a lost REQUEST reply: ioredis reconnects and re-sends; with id= it is replayed, assigned +1");
  } else {
    assert.equal(reply.replayed, undefined);
    assert.equal(after - before, 2, "without an id the resend is a second REQUEST");
    ok("a lost REQUEST reply without an id: the resend assigns a second coupon, assigned +2");
  }
  r.disconnect();
  admin.disconnect();
  proxy.server.close();
}

// What ioredis sent, from the operation log: each connection's first commands.
function sentOnConnect() {
  const byConn = new Map();
  for (const line of fs.readFileSync(OPLOG, "utf8").split("\n")) {
    const kv = Object.fromEntries(
      line.split(" ").filter((w) => w.includes("=")).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)])
    );
    if (!kv.conn || kv.op === "CONNECT" || kv.op === "CLOSE") continue;
    if (!byConn.has(kv.conn)) byConn.set(kv.conn, []);
    byConn.get(kv.conn).push(kv.op + (kv.sub ? " " + kv.sub : ""));
  }
  return [...byConn.values()][0].slice(0, 4);
}

(async () => {
  await everyVerb();
  await new Promise((r) => setTimeout(r, 200)); // the log writer's turn
  const first = sentOnConnect();
  console.log(`# ioredis ${require("ioredis/package.json").version} sent on connecting: ${first.join(", ")}`);
  assert.deepEqual(first, ["HELLO", "CLIENT SETINFO", "CLIENT SETINFO", "INFO"]);
  ok("ioredis's connection set-up: HELLO 3, CLIENT SETINFO twice, INFO");
  await lostReply(true);
  await lostReply(false);
  console.log(`${checks} passed, 0 failed`);
})().catch((e) => {
  console.error(e);
  console.log(`${checks} passed, 1 failed`);
  process.exit(1);
});
